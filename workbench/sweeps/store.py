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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna

from ..config import ConfigError

JOURNAL = "journal.log"
META = "sweep.json"
TRIAL_ATTRS = ("objective", "objective_params", "run_fields", "seeds", "run_dirs", "seed_values", "aggregate")


def sweeps_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("WORKBENCH_SWEEPS", "runs/sweeps"))


def sweep_folder(name: str, root: str | Path | None = None) -> Path:
    return sweeps_root(root) / name


def existing_sweeps(root: str | Path | None = None) -> list[str]:
    base = sweeps_root(root)
    return sorted(p.parent.name for p in base.glob(f"*/{META}")) if base.is_dir() else []


def make_storage(folder: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The journal file in the sweep folder, or the RDB at ``url`` (PostgreSQL for many machines)."""
    if url:
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
    backend = optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL))
    return optuna.storages.JournalStorage(backend)


def read_meta(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """sweep.json of an existing sweep; a name that does not exist lists the ones that do."""
    path = sweep_folder(name, root) / META
    if not path.is_file():
        known = existing_sweeps(root)
        listing = ", ".join(known) if known else "none yet"
        raise ConfigError(f"sweep {name!r}: no such sweep under {sweeps_root(root)} (existing: {listing})")
    return json.loads(path.read_text())


def open_study(name: str, root: str | Path | None = None, storage: str | None = None) -> optuna.Study:
    """The study of an existing sweep, from its journal or from ``storage`` (default: the URL it was launched with)."""
    meta = read_meta(name, root)
    url = storage or (meta.get("storage") if meta.get("storage") != JOURNAL else None)
    return optuna.load_study(study_name=name, storage=make_storage(sweep_folder(name, root), url))
