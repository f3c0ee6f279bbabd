"""One trial: its parameters → one run per seed → the aggregate value, all recorded in the study.

Seeds run one after the other. Pruning sees the seed-averaged eval curve: at eval step s of the i-th
seed the trial reports, at pruner step i·max_steps + s, the mean at step s over seeds 0…i (the ones
finished and the one running). Every trial reports at the same (seed position, step) points, so the
pruner compares trials averaged over the same number of seeds, and a trial whose first seed is
already hopeless stops before spending the others.

A full disk or an unwritable folder is the machine's failure, not the configuration's: the trial is failed
as interrupted, re-queued with its parameters for the next launch, and the worker stops claiming trials
(the OSError goes up to it, naming the path) instead of failing every remaining one in seconds. A stopped sweep
(SIGINT/SIGTERM, see sweeps.stop) does the same for the trial it cuts short, and its run is recorded ``interrupted``.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy.stats import trim_mean

from ..config import ConfigError, machine_error
from ..runner import RunStopped, prepare_run, train
from . import optuna_private as private
from .space import suggest
from .spec import SweepSpec
from .stop import deferred, interruptible
from .store import host_name
from .study import clean, mark_interrupted_runs


def aggregate(values: list[float], how: str) -> float:
    """Mean, or interquartile mean (the middle 50%, as rliable) of the seed values."""
    return float(np.mean(values)) if how == "mean" else float(trim_mean(values, 0.25))


def run_dir(folder: Path, number: int, seed: int) -> Path:
    return folder / "trials" / str(number) / f"seed-{seed}"


class _Failed(Exception):
    """A seed run failed: the trial is recorded as FAIL with this one-line reason."""


def run_trial(study: optuna.Study, trial: optuna.Trial, spec: SweepSpec, folder: Path) -> TrialState:
    """Run the trial's seeds and tell the study; never raises for a run that goes wrong."""
    seeds = trial.user_attrs.get("seeds") or list(spec.seed_order)  # a look's seeds (sweeps.looks), else all
    attrs: dict[str, Any] = {"seeds": seeds, "aggregate": spec.aggregate, "run_dirs": {}, "seed_values": {},
                             "host": host_name()}
    history = private.storage(study).get_trial(private.trial_id(trial)).system_attrs.get("retry_history")
    if history:  # set by RetryHeartbeatStaleTrialCallback on a re-queued trial
        attrs["retry_of"] = history[-1]
    try:
        params = suggest(trial, spec)
        attrs |= {"objective": params.objective, "objective_params": params.objective_params,
                  "run_fields": params.run_fields}
        _set(trial, attrs)
        curves: list[dict[int, float]] = []
        for position, seed in enumerate(seeds):
            value, curve = _run_seed(trial, spec, folder, params, position, seed, curves)
            if value is None:
                study.tell(trial, state=TrialState.PRUNED)
                return TrialState.PRUNED
            curves.append(curve)
            attrs["seed_values"][str(seed)] = value
            trial.set_user_attr("seed_values", attrs["seed_values"])
        study.tell(trial, aggregate(list(attrs["seed_values"].values()), spec.aggregate))
        return TrialState.COMPLETE
    except KeyboardInterrupt:  # the sweep is stopping (SIGINT/SIGTERM, sweeps.stop): not this configuration's fault
        _requeue(study, trial, "interrupted: the sweep was stopped (SIGINT/SIGTERM); re-run on the next launch")
        mark_interrupted_runs(folder, trial)  # a run cut before it could close its own record
        raise
    except Exception as err:  # noqa: BLE001 - a failing trial is recorded, the sweep goes on
        cause = machine_error(err)
        if cause is not None:  # a failed write on an open file has no file name: name the trial's folder
            where = cause.filename or str(folder / "trials" / str(trial.number))
            _requeue(study, trial, f"interrupted by the machine ({cause.strerror}: {where}); re-run on the next launch")
            raise OSError(cause.errno, cause.strerror, where) from None
        first_line = (str(err).splitlines() or [""])[0]
        reason = first_line if isinstance(err, _Failed) else f"{type(err).__name__}: {first_line}"
        trial.set_user_attr("failure", reason)
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Fail the trial as interrupted and queue a re-run of its parameters (no retry limit: not its fault)."""
    trial.set_user_attr("failure", reason)
    study.tell(trial, state=TrialState.FAIL)
    optuna.storages.RetryHeartbeatStaleTrialCallback(None)(study, clean(private.storage(study).get_trial(
        private.trial_id(trial))))


def _set(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _run_seed(trial: optuna.Trial, spec: SweepSpec, folder: Path, params: Any, position: int, seed: int,
              curves: list[dict[int, float]]) -> tuple[float | None, dict[int, float]]:
    """Train one seed; (final metric, eval curve), or (None, curve) when the pruner stopped it."""
    cfg = spec.run_config(params.objective, params.objective_params, params.run_fields, seed)
    path = run_dir(folder, trial.number, seed)
    try:
        prepared = prepare_run(cfg, run_dir=path, wandb_group=spec.name,
                               wandb_name=f"{spec.name}-trial{trial.number}-seed{seed}")
    except ConfigError as err:
        raise _Failed(f"seed {seed}: {err}") from None
    run_dirs = trial.user_attrs.get("run_dirs", {}) | {str(seed): str(path.relative_to(folder))}
    trial.set_user_attr("run_dirs", run_dirs)
    curve: dict[int, float] = {}

    def on_eval(step: int, metrics: dict[str, float]) -> None:
        curve[step] = metrics.get(spec.metric, math.nan)
        same_step = [c[step] for c in curves if step in c] + [curve[step]]
        with deferred():  # a stop signal never cuts a storage write
            trial.report(float(np.mean(same_step)), position * cfg.max_steps + step)
            prune = trial.should_prune()
        if prune:
            raise RunStopped

    with interruptible():  # a stop signal cuts the run short: recorded interrupted, the trial re-queued
        result = train(prepared, on_eval=on_eval)
    status = result.summary["status"]
    if status == "pruned":
        return None, curve
    if status != "finished":
        raise _Failed(f"seed {seed}: {result.summary.get('failure', status)}")
    value = (result.summary.get("eval") or {}).get(spec.metric)
    if value is None or not math.isfinite(value):
        raise _Failed(f"seed {seed}: final eval has no finite {spec.metric!r} (got {value!r})")
    return float(value), curve


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat for the trial while it runs, on storages that detect dead workers this way (RDB).

    The test is Optuna's own: ``optuna.load_study`` hands back a database storage wrapped in a cache
    (``_CachedStorage``), which beats through to the database but is no ``RDBStorage``.
    """
    storage = private.storage(study)
    if not private.heartbeat_enabled(storage):
        yield
        return
    interval = storage.get_heartbeat_interval()
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(private.trial_id(trial))
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
