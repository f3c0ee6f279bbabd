"""Every use of Optuna's private API, in one place: the names a new Optuna may rename without notice.

pyproject.toml pins Optuna to the minor range these were checked against, and
tests/sweeps/test_optuna_private.py fails, naming the name, when one of ``PINNED`` is gone. Nothing else in
workbench reads an underscore attribute of Optuna or imports from an ``optuna.*._*`` module.

Why the private names at all: a sweep claims WAITING trials itself (``Study.ask`` would create a new trial
whenever none is waiting, and cannot say "only a waiting one, else nothing"), fails and re-queues trials whose
process died, and records who owns a trial. All of that is the storage's public API (``BaseStorage``'s methods
take a study id and a trial id), but Optuna offers no public way from a ``Study`` or ``Trial`` to its storage
and ids. The journal file's lock and path are public (our ``RepairingJournal`` passes and keeps its own), so they
need nothing here.
"""

from __future__ import annotations

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled

# What this module reads, as (where, name): a module-level name, or an attribute of an instance of a class
# (Study and Trial keep theirs on the instance). tests/sweeps/test_optuna_private.py checks each on real objects.
PINNED: tuple[tuple[str, str], ...] = (
    ("optuna.study.Study instance", "_storage"),
    ("optuna.study.Study instance", "_study_id"),
    ("optuna.trial.Trial instance", "_trial_id"),
    ("optuna.trial.FrozenTrial instance", "_trial_id"),
    ("optuna.storages._heartbeat", "is_heartbeat_enabled"),
    ("optuna.storages._heartbeat.BaseHeartbeat", "_get_stale_trial_ids"),
)


def storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage. Public ``Study`` methods cover only its own trial life cycle (ask/tell/enqueue);
    claiming a WAITING trial, re-queueing a dead one, copying a study for an archive and beating need the storage
    itself, and ``Study`` exposes it only as ``_storage`` (``optuna.load_study`` wraps an RDB in a cache, so the
    storage built by ``make_storage`` is not the one to call)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage: every ``BaseStorage`` method takes it, ``Study`` keeps it as ``_study_id``
    (there is no public getter; ``storage.get_study_id_from_name`` would cost a round trip per call)."""
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """A trial's id in its storage (not its number): ``Trial`` and ``FrozenTrial`` keep it only as ``_trial_id``,
    and the storage's public methods (set state, attributes, heartbeat) take nothing else."""
    return trial._trial_id


def heartbeat_enabled(store: optuna.storages.BaseStorage) -> bool:
    """Whether the storage beats for running trials (an RDB built with heartbeat_interval). Optuna's own test,
    ``optuna.storages._heartbeat.is_heartbeat_enabled``, is not exported; an ``isinstance(RDBStorage)`` test would
    miss the ``_CachedStorage`` that ``optuna.load_study`` hands back, which beats through to the database."""
    return _is_heartbeat_enabled(store)


def stale_trial_ids(store: optuna.storages.BaseStorage, study: int) -> list[int]:
    """The RUNNING trials whose beat is older than the grace period (for the tests: whether a beating trial is seen
    as alive). ``fail_stale_trials`` acts on them but does not say which they are; only ``_get_stale_trial_ids``
    does."""
    return store._get_stale_trial_ids(study)
