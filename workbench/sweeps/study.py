"""The Optuna study of a sweep: created once, checked against the sweep file, claimed trial by trial.

Budget and grid as WAITING trials. When a sweep is created, its whole trial budget is enqueued: one
WAITING trial per grid point (parameters fixed), or ``budget.trials`` empty ones that the sampler fills
when a worker claims them. A worker only ever claims a WAITING trial, and claiming is Optuna's atomic
WAITING → RUNNING transition (a row update in the database, an ordered log entry in the journal), so
several workers on one machine or many never exceed the budget nor run a grid point twice. Only a
sweep bounded by wall time alone creates trials on the fly.

Interrupted trials. Every claimed trial records its owner (host, pid, process start time). At launch,
a RUNNING trial of this host whose owner process is gone is failed and re-queued with its parameters
(Optuna's RetryHeartbeatStaleTrialCallback); with a database, Optuna's heartbeat does the same for any host:
the beat starts at the claim, and a trial whose beat is older than the grace period is re-queued by the
next claim on any machine. A worker that finds no WAITING trial while others are RUNNING waits for them
to finish or go stale (see ``awaiting``) rather than leave a dead machine's trial to nobody.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.trial import TrialState

from ..config import ConfigError
from ..tracking import write_json_atomic
from . import optuna_private as private
from .looks import PLANNED, first_look, gate_ready, is_gate
from .spec import SweepSpec, changed_keys
from .store import JOURNAL, META, MAX_RETRY, check_storage, heartbeat_seconds, host_name, make_storage, redact

OWNER = "workbench:owner"
RUNNING_WITHOUT_OWNER_GRACE = 60.0  # seconds between a claim and its owner record, with room to spare
SPEC_WAIT_SECONDS = 60.0  # another machine creating the same study: time it has to finish


def prepare(spec: SweepSpec, folder: Path, url: str | None, force_new: bool) -> optuna.Study:
    """Open the sweep's study, or create it with its budget; refuse a sweep file that changed.

    Everything that can be refused is checked before the folder, journal or study is created.
    """
    if url:
        check_storage(url)
    meta_path = folder / META
    if meta_path.is_file():
        recorded = json.loads(meta_path.read_text()).get("storage")
        if recorded != (url or JOURNAL) and not force_new:
            raise ConfigError(f"storage: sweep {spec.name!r} was launched with storage {redact(recorded)!r}; "
                              "launch it with the same storage, or pass --force-new")
    existing = _load(spec.name, folder, url) if (url or (folder / JOURNAL).is_file()) else None
    if existing is not None and not force_new:
        _check_same(existing, spec)
    if force_new:
        if existing is not None:
            refuse_while_launched(existing, "--force-new")
        archive(spec.name, folder, url, existing)
        existing = None
    folder.mkdir(parents=True, exist_ok=True)
    study = existing or _create(spec, folder, url)
    write_json_atomic(meta_path, {"name": spec.name, "storage": url or JOURNAL,
                                  "spec": spec.model_dump(mode="json"), "spec_hash": spec.spec_hash()})
    return study


def _load(name: str, folder: Path, url: str | None) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=make_storage(folder, url))
    except KeyError:
        return None


def _check_same(study: optuna.Study, spec: SweepSpec) -> None:
    deadline = time.time() + SPEC_WAIT_SECONDS
    while "spec" not in study.user_attrs and time.time() < deadline:  # its creator is still enqueuing
        time.sleep(1.0)
    recorded = study.user_attrs.get("spec")
    if recorded is None:
        raise ConfigError(f"study {spec.name!r} exists but was not created by workbench sweep launch; "
                          "pass --force-new or choose another name")
    changes = changed_keys(recorded, spec.identity())
    if changes:
        raise ConfigError(f"sweep file changed since sweep {spec.name!r} was created: {'; '.join(changes)}; "
                          "restore it, or pass --force-new to start a new study (the old one is archived)")


def archive(name: str, folder: Path, url: str | None, study: optuna.Study | None) -> Path | None:
    """--force-new: move the old folder to NAME.old-<time>; a database study is copied into its journal."""
    if not folder.exists() and study is None:
        return None
    target = folder.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    if folder.exists():
        shutil.move(str(folder), str(target))
    if url and study is not None:
        target.mkdir(parents=True, exist_ok=True)
        optuna.copy_study(from_study_name=name, from_storage=private.storage(study),
                          to_storage=make_storage(target, None), to_study_name=name)
        meta = target / META  # the archive is read from its own journal: say so, or readers would open the database
        recorded = json.loads(meta.read_text()) if meta.is_file() else {"name": name}
        write_json_atomic(meta, {**recorded, "storage": JOURNAL, "archived_from": redact(url)})
        optuna.delete_study(study_name=name, storage=private.storage(study))
    return target


def _create(spec: SweepSpec, folder: Path, url: str | None) -> optuna.Study:
    try:
        study = optuna.create_study(study_name=spec.name, storage=make_storage(folder, url), direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:  # another machine created it a moment ago
        study = optuna.load_study(study_name=spec.name, storage=make_storage(folder, url))
        _check_same(study, spec)
        return study
    slots = first_look(spec) if spec.sampler == "grid" else [({}, {})] * (spec.budget.trials or 0)
    for params, attrs in slots[:spec.budget.trials]:
        study.enqueue_trial(params, user_attrs=attrs or None)
    # Written last: a study with "spec" is complete, which other machines wait for (_check_same).
    study.set_user_attr("spec_hash", spec.spec_hash())
    study.set_user_attr("spec", spec.identity())
    return study


# ---- launchers ----------------------------------------------------------------------------------
#
# Every launch registers itself in the study (a system attribute per launcher: host, pid, process start time and
# a beat it renews every heartbeat_seconds()), so that whatever would move or rewrite the sweep (--force-new)
# refuses while another launcher of it lives, on this machine or any other sharing the database. Nothing is held
# that a dead launcher could leave behind: on this host a record counts only while its process lives (pid and start
# time, so a reboot frees it), on another host only while its beat is younger than the grace period.

LAUNCHER = "workbench:launcher:"


def register_launcher(study: optuna.Study) -> str:
    """Record this process as a live launcher of the study; the key to beat and unregister with."""
    key = f"{LAUNCHER}{host_name()}:{psutil.Process().pid}"
    beat_launcher(study, key)
    return key


def beat_launcher(study: optuna.Study, key: str, ended: bool = False) -> None:
    record = {**owner(), "beat": time.time(), **({"ended": True} if ended else {})}
    private.storage(study).set_study_system_attr(private.study_id(study), key, record)


def live_launchers(study: optuna.Study) -> list[dict[str, Any]]:
    """The other launchers of the study that are alive now (see above)."""
    me, grace = owner(), heartbeat_seconds()[1]
    attrs = private.storage(study).get_study_system_attrs(private.study_id(study))
    live = []
    for key, record in attrs.items():
        if not key.startswith(LAUNCHER) or not isinstance(record, dict) or record.get("ended"):
            continue
        if record.get("host") == me["host"] and record.get("pid") == me["pid"]:
            continue
        here = record.get("host") == me["host"]
        alive = _owner_alive(record) if here else time.time() - float(record.get("beat") or 0) < grace
        if alive:
            live.append(record)
    return live


def refuse_while_launched(study: optuna.Study, action: str) -> None:
    live = live_launchers(study)
    if live:
        who = ", ".join(f"pid {r['pid']} on host {r['host']}" for r in live)
        raise ConfigError(f"{action}: sweep {study.study_name!r} is being run by another launcher ({who}); stop it "
                          "first (kill -INT <pid> stops it cleanly) or wait until it ends")


def budget_bounded(spec: SweepSpec) -> bool:
    return spec.sampler == "grid" or spec.budget.trials is not None


# ---- claiming ------------------------------------------------------------------------------------


def owner() -> dict[str, Any]:
    me = psutil.Process()
    return {"host": host_name(), "pid": me.pid, "started": me.create_time()}


def _owner_alive(record: dict[str, Any]) -> bool:
    try:
        process = psutil.Process(record["pid"])
        # A killed worker whose parent died too can linger as a zombie when nothing reaps orphans (containers).
        return process.create_time() == record["started"] and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, KeyError):
        return False


def claim(study: optuna.Study, bounded: bool) -> optuna.Trial | None:
    """The next WAITING trial, now RUNNING and owned by this process; None when the budget is spent."""
    storage, study_id = private.storage(study), private.study_id(study)
    optuna.storages.fail_stale_trials(study)  # heartbeat storages: trials of dead machines → re-queued
    trials = storage.get_all_trials(study_id, deepcopy=False)
    for waiting in (t for t in trials if t.state == TrialState.WAITING):
        if is_gate(waiting) and not gate_ready(trials):  # a look opens once the looks before it have ended
            continue
        trial_id = private.trial_id(waiting)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                break
        except optuna.exceptions.UpdateFinishedTrialError:  # taken and finished by another worker
            continue
    else:
        if bounded:
            return None
        trial_id = storage.create_new_trial(study_id)
    if private.heartbeat_enabled(storage):  # at once: a machine dying before its beat thread starts is still seen
        storage.record_heartbeat(trial_id)
    storage.set_trial_system_attr(trial_id, OWNER, owner())
    return optuna.Trial(study, trial_id)


def awaiting(study: optuna.Study) -> bool:
    """Whether RUNNING trials may still finish or come back as WAITING: with heartbeats any of them (a dead
    machine's trial goes stale), else this host's trials whose owner lives or that a requeue will catch."""
    storage = private.storage(study)
    running = storage.get_all_trials(private.study_id(study), deepcopy=False, states=(TrialState.RUNNING,))
    if private.heartbeat_enabled(storage):
        return bool(running)
    here = [t.system_attrs.get(OWNER) for t in running]
    return any(record is not None and record["host"] == host_name() for record in here)


def requeue_interrupted(study: optuna.Study, folder: Path | None = None) -> list[int]:
    """Fail and re-queue this host's RUNNING trials whose process is gone; their numbers. With the sweep ``folder``,
    their runs still marked running (a killed process could not close them) are recorded ``interrupted``."""
    host, now, retry = host_name(), time.time(), optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY)
    storage, requeued = private.storage(study), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = trial.system_attrs.get(OWNER)
        if record is None:
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - started < RUNNING_WITHOUT_OWNER_GRACE:
                continue
        elif record["host"] != host or _owner_alive(record):
            continue
        storage.set_trial_user_attr(private.trial_id(trial), "failure", "interrupted: its worker process died; re-run")
        try:
            if not storage.set_trial_state_values(private.trial_id(trial), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another launch re-queued it first
            continue
        retry(study, clean(storage.get_trial(private.trial_id(trial))))
        requeued.append(trial.number)
        if folder is not None:
            mark_interrupted_runs(folder, trial)
    return requeued


def clean(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """The trial as its re-run starts: what it is (its look, seeds, gate) kept, nothing it recorded ("failure")."""
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in PLANNED}
    return trial


def mark_interrupted_runs(folder: Path, trial: optuna.trial.FrozenTrial | optuna.Trial) -> list[Path]:
    """Record ``interrupted`` in the summary.json of the trial's runs still marked running; the run folders."""
    marked = []
    for rel in (trial.user_attrs.get("run_dirs") or {}).values():
        path = folder / rel / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):  # never started, or unreadable: the report flags it
            continue
        if isinstance(summary, dict) and summary.get("status") == "running":
            write_json_atomic(path, {**summary, "status": "interrupted",
                                     "failure": "interrupted: its process was killed before it could close the run"})
            marked.append(path.parent)
    return marked
