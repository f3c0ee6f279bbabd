"""Where a sweep lives, and what its Optuna study holds: the contract between the sweep engine and the reports.

A sweep named NAME has a folder ``<root>/NAME/`` (root: ``runs/sweeps`` under the working directory,
or ``$WORKBENCH_SWEEPS``) holding

    sweep.json              {"name", "storage", "spec": the validated SweepSpec, "spec_hash"}
    journal.log             the Optuna journal (the default storage; absent when storage is a database URL)
    trials/<n>/seed-<s>/    one run folder per seed of trial n (workbench.tracking's run record)

The Optuna study is named NAME and maximises the trial value. Every trial carries, as user attributes,
everything a report needs besides the run folders:

    objective        str                 the registered objective (or plugin path / trl:<loss>)
    objective_params dict                its parameters for this trial
    run_fields       dict                other RunConfig fields set by the search space (rollout_precision, ...)
    seeds            list[int]           the seeds the trial runs
    run_dirs         dict[str, str]      seed → run folder, relative to the sweep folder
    seed_values      dict[str, float]    seed → final value of the sweep's metric (finished seeds only)
    aggregate        "mean" | "iqm"      how seed_values became the trial's value
    failure          str                 one-line reason, on failed trials
    host             str                 machine that ran the trial (run_dirs live in its sweep folder)
    retry_of         int                 on a re-run: the number of the interrupted trial it replaces

A trial that was running when its process died is marked FAIL and re-run as a new trial (Optuna's
RetryHeartbeatStaleTrialCallback: system attribute ``failed_trial`` and user attribute ``retry_of`` on the
re-run). Reports skip a FAIL trial whose number is another trial's ``retry_of``: it was interrupted,
not a failed configuration. WAITING trials are the budget not spent yet (see sweeps.study).

The study's user attributes hold ``spec`` (the sweep identity: the SweepSpec without workers, storage,
budget.minutes) and ``spec_hash``, so every machine sharing a database checks its file against them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import optuna

from ..config import ConfigError

JOURNAL = "journal.log"
META = "sweep.json"


def sweeps_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("WORKBENCH_SWEEPS", "runs/sweeps"))


def sweep_folder(name: str, root: str | Path | None = None) -> Path:
    return sweeps_root(root) / name


def existing_sweeps(root: str | Path | None = None) -> list[str]:
    base = sweeps_root(root)
    return sorted(p.parent.name for p in base.glob(f"*/{META}")) if base.is_dir() else []


MAX_RETRY = 3  # a trial that kills its process every time (OOM kill) stops being retried


def heartbeat_seconds() -> tuple[int, int]:
    """(beat interval, grace period) of database sweeps: 30 s and 120 s unless $WORKBENCH_HEARTBEAT_SECONDS and
    $WORKBENCH_GRACE_SECONDS say otherwise (tests shorten them; every machine of a sweep should agree)."""
    env = os.environ.get
    return int(env("WORKBENCH_HEARTBEAT_SECONDS", 30)), int(env("WORKBENCH_GRACE_SECONDS", 120))


def host_name() -> str:
    """The machine a trial runs on: $WORKBENCH_HOST, else the host name (two containers may share one)."""
    return os.environ.get("WORKBENCH_HOST") or socket.gethostname()


def make_storage(folder: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The journal file in the sweep folder, or the RDB at ``url`` (PostgreSQL for many machines).

    With the RDB, a worker beats every heartbeat_seconds() while its trial runs; a trial whose beat is
    older than the grace period (its machine died) is failed and re-queued by the next worker to claim a trial.
    """
    if url:
        check_storage(url)
        return _rdb_storage(url)
    return optuna.storages.JournalStorage(RepairingJournal(str(folder / JOURNAL)))


class RepairingJournal(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file, whose cut last line (a crash or full disk mid-write) is dropped before an append.

    Appended after a cut line, a new entry would make an undecodable line in the middle, and Optuna refuses
    such a journal for good. The check runs under the journal's own lock, so it never cuts a line another
    process is writing; an entry lost this way was never acknowledged to its writer.
    """

    def __init__(self, file_path: str) -> None:
        # Optuna's default lock, built here so that its public acquire/release serve the check below.
        self.path, self.lock = Path(file_path), optuna.storages.journal.JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self.lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.lock.acquire()
        try:
            drop_cut_line(self.path)
        finally:
            self.lock.release()
        super().append_logs(logs)


def drop_cut_line(path: Path) -> int:
    """Truncate ``path`` after its last newline; the number of bytes dropped (0 when it was whole)."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep, block = size, 65536
        while keep > 0:  # find the last newline, reading backwards
            start = max(0, keep - block)
            f.seek(start)
            found = f.read(keep - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            keep = start
        f.truncate(keep)
    print(f"warning: {path}: dropped a cut last line ({size - keep} bytes, an entry interrupted by a crash or "
          "full disk)", file=sys.stderr)
    return size - keep


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    from sqlalchemy.exc import IntegrityError

    pauses = [1.0, 2.0]
    while True:
        try:
            with warnings.catch_warnings():  # heartbeat and retry are experimental in Optuna, and what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                interval, grace = heartbeat_seconds()
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=interval, grace_period=grace,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY))
        except IntegrityError:  # two machines creating the schema of an empty database at once: the other won
            if not pauses:
                raise
            time.sleep(pauses.pop(0))


def read_meta(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """sweep.json of an existing sweep; a name that does not exist lists the ones that do."""
    path = sweep_folder(name, root) / META
    if not path.is_file():
        known = existing_sweeps(root)
        listing = ", ".join(known) if known else "none yet"
        raise ConfigError(f"sweep {name!r}: no such sweep under {sweeps_root(root)} (existing: {listing})")
    return json.loads(path.read_text())


def open_study(name: str, root: str | Path | None = None, storage: str | None = None) -> optuna.Study:
    """The study of an existing sweep, from its journal or from ``storage`` (default: the URL it was launched with).

    The study's name is the one sweep.json records: an archive ``NAME.old-<time>`` (``--force-new``) holds the study
    NAME in its own journal."""
    meta = read_meta(name, root)
    url = storage or (meta.get("storage") if meta.get("storage") != JOURNAL else None)
    study_name = meta.get("name") if isinstance(meta.get("name"), str) else name
    try:
        return optuna.load_study(study_name=study_name, storage=make_storage(sweep_folder(name, root), url))
    except KeyError:
        raise ConfigError(f"sweep {name!r}: its storage {redact(url) if url else 'journal file'} holds no study "
                          f"{study_name!r}") from None


def check_storage(url: str) -> None:
    """Refuse a database URL that cannot be reached, before anything is created in it or on disk."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args=_connect_timeout(url))
    except Exception as err:  # noqa: BLE001 - an unknown dialect or malformed URL, reported as bad input
        reason = redact(url, (str(err).splitlines() or [""])[0])  # SQLAlchemy may quote the URL back
        raise ConfigError(f"storage {redact(url)}: not a usable database URL ({reason})") from None
    try:
        with engine.connect():
            pass
    except Exception as err:  # noqa: BLE001 - refused, unknown host, bad password: all bad input
        reason = redact(url, (str(getattr(err, "orig", err)).strip().splitlines() or [""])[0])
        raise ConfigError(f"storage {redact(url)}: cannot connect ({reason})") from None
    finally:
        engine.dispose()


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_timeout": 5} if url.startswith(("postgresql", "mysql")) else {}


SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """Where a storage URL carries credentials, whatever its shape (unparsable, an unescaped ``@`` in the password):
    everything between the first ``:`` after the user and the *last* ``@``, and the value of every query parameter
    whose name suggests a secret (``password``, ``sslpassword``, ``token``, ...). Masking too much is harmless."""
    spans = []
    start = url.index("://") + 3 if "://" in url else 0
    at = url.rfind("@")
    colon = url.find(":", start, at) if at > start else -1
    if colon >= 0:
        spans.append((colon + 1, at))
    for match in re.finditer(r"[?&;]([^=&;#]*)=([^&;#]*)", url):
        if SECRET_PARAMETER.search(match.group(1)) and match.group(2):
            spans.append(match.span(2))
    return sorted(spans)


def redact(url: str, text: str | None = None) -> str:
    """The URL with every credential replaced by ``***``; with ``text``, that text with every credential of ``url``
    (as written, or percent-decoded) replaced, for a library's error message that may quote the URL."""
    spans = _secret_spans(url)
    if text is None:
        shown, end = "", 0
        for begin, stop in spans:
            if begin >= end:
                shown, end = shown + url[end:begin] + "***", stop
        return shown + url[end:]
    secrets = {url[b:e] for b, e in spans} | {unquote(url[b:e]) for b, e in spans}
    # A library that split the URL elsewhere (at the password's own "@") quotes pieces of it: mask those too.
    secrets |= {piece for secret in list(secrets) for piece in re.split(r"[@:/]", secret) if len(piece) >= 3}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text.replace(url, redact(url))
