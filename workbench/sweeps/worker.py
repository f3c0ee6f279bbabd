"""A sweep worker process: handlers for SIGINT/SIGTERM first, then the heavy imports, then claim and run trials
until the budget or wall time is spent (sweeps.launch starts them; sweeps.stop says how a stop unwinds).

Only the standard library and sweeps.stop are imported at the top: a worker is spawned by importing this module, and a
signal in its first seconds must meet the handlers, not an import of Optuna, torch or TRL.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .stop import install_worker_handlers, requested, started

if TYPE_CHECKING:
    import optuna

    from .spec import SweepSpec

AWAIT_SECONDS = 5.0  # a worker with nothing to claim checks this often whether others' trials finished or went stale


def worker_entry(*args: Any) -> None:
    """A worker process's target: handlers first, then the heavy imports and the work (worker_main)."""
    install_worker_handlers()

    try:
        worker_main(*args)
    except KeyboardInterrupt:  # stopped: the trial is re-queued and its run recorded interrupted (sweeps.trial)
        # Everything is written (storage writes and run records are synchronous): skip the interpreter's teardown of
        # torch and TRL, which can take many seconds on a busy machine while the launcher waits.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def worker_main(spec_json: str, folder: str, url: str | None, deadline: float | None, threads: int, index: int,
                parent: int, stopped: multiprocessing.SimpleQueue) -> None:
    """One worker: claim and run trials until the budget or wall time is spent; its machine's failure → ``stopped``."""
    from ..config import machine_error

    try:
        _work(spec_json, folder, url, deadline, threads, index, parent, stopped)
    except Exception as err:
        cause = machine_error(err)
        if cause is None:
            raise
        stopped.put((cause.errno, cause.strerror, cause.filename or folder))


def _work(spec_json: str, folder: str, url: str | None, deadline: float | None, threads: int, index: int,
          parent: int, stopped: multiprocessing.SimpleQueue) -> None:
    _die_with_parent(parent)
    quiet_libraries()
    import optuna
    import torch

    from .spec import SweepSpec
    from .store import make_storage
    from .looks import is_gate, open_look
    from .study import awaiting, budget_bounded, claim, requeue_interrupted
    from .trial import heartbeat, run_trial  # here, not above: the launcher never loads torch and TRL

    torch.set_num_threads(threads)
    spec = SweepSpec.model_validate_json(spec_json)
    study = optuna.load_study(study_name=spec.name, storage=make_storage(Path(folder), url),
                              sampler=make_sampler(spec, index), pruner=make_pruner(spec))
    bounded = budget_bounded(spec)
    started()
    # stopped empty: no worker's machine failed; requested() 0: no SIGINT/SIGTERM (sweeps.stop)
    while (deadline is None or time.time() < deadline) and stopped.empty() and not requested():
        trial = claim(study, bounded)
        if trial is None:
            if not awaiting(study):
                return
            sleep_until(AWAIT_SECONDS, requested)  # a dead machine's trial comes back WAITING once its beat is stale
            requeue_interrupted(study, Path(folder))
            continue
        with heartbeat(study, trial):
            if is_gate(trial):
                open_look(study, trial, spec)
            else:
                run_trial(study, trial, spec, Path(folder))


def sleep_until(seconds: float, until: Callable[[], object]) -> None:
    """Sleep, waking early when ``until()`` turns true (a stop signal)."""
    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def quiet_libraries() -> None:
    """The progress display says what Optuna's per-trial log lines and library notices would."""
    import optuna

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.raiseExceptions = False  # a handler that cannot write (a full disk) must not print a traceback per record


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the launcher died before the signal was armed
        os._exit(1)


def make_sampler(spec: SweepSpec, index: int) -> optuna.samplers.BaseSampler:
    """Grid points arrive enqueued with fixed parameters, so a grid sweep's sampler never draws.

    Each worker seeds its sampler differently (sampler_seed + worker index): identical seeds would make two
    workers with the same history propose the same point.
    """
    import optuna

    seed = spec.sampler_seed + index
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """Pruner steps run over seed position × steps (sweeps.trial); no pruning inside the first half-seed."""
    import optuna

    steps = spec.run_config(spec.objectives[0], {}, {}, spec.seed_order[0]).max_steps
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=steps // 2)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, steps // 2), max_resource=steps * len(spec.seed_order))
    return optuna.pruners.NopPruner()
