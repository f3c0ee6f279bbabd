"""The Optuna pin's guard: every private name workbench.sweeps.optuna_private reads still exists and still means what
it did, on real objects of the installed Optuna; and no other module of workbench reaches Optuna's private API."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import optuna
import pytest

import workbench
from workbench.sweeps import optuna_private as private
from workbench.sweeps.store import make_storage


@pytest.fixture
def study(tmp_path):
    study = optuna.create_study(study_name="pin", storage=make_storage(tmp_path, None))
    study.enqueue_trial({"x": 1.0})
    return study


def _holder(where: str, study: optuna.Study):
    if where.endswith(" instance"):
        trial = study.ask()
        return {"optuna.study.Study": study, "optuna.trial.Trial": trial,
                "optuna.trial.FrozenTrial": study.get_trials()[0]}[where.removesuffix(" instance")]
    module, _, cls = where.rpartition(".")
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("where,name", private.PINNED, ids=[f"{w}.{n}" for w, n in private.PINNED])
def test_every_pinned_private_name_still_exists(where, name, study):
    holder = _holder(where, study)
    assert hasattr(holder, name), (
        f"Optuna {optuna.__version__} has no {where}.{name}, which workbench/sweeps/optuna_private.py reads: "
        "adapt that module before widening the Optuna pin in pyproject.toml")


def test_the_accessors_return_what_the_sweeps_rely_on(study):
    trial = study.ask()
    store, sid, tid = private.storage(study), private.study_id(study), private.trial_id(trial)
    assert isinstance(store, optuna.storages.BaseStorage) and isinstance(sid, int) and isinstance(tid, int)
    assert store.get_study_id_from_name("pin") == sid
    assert store.get_trial(tid).number == trial.number == 0
    assert private.trial_id(study.get_trials()[0]) == tid
    assert store.get_trial_system_attrs(tid).get("fixed_params") == {"x": 1.0}  # the enqueued trial was claimed
    assert private.heartbeat_enabled(store) is False  # a journal does not beat


def test_no_other_module_reaches_optuna_private_api():
    package = Path(workbench.__file__).parent
    private_use = re.compile(r"\.(_storage|_study_id|_trial_id|_cached_frozen_trial|_file_path)\b|optuna(\.\w+)*\._\w+")
    offenders = [f"{path.relative_to(package)}:{n}" for path in package.rglob("*.py")
                 if path.name != "optuna_private.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if private_use.search(line)]
    assert offenders == []
