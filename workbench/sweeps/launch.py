"""`workbench sweep launch`: prepare the study, start N worker processes, show progress until they end.

Workers are spawned processes that each claim trials from the shared storage until the budget is
spent (see sweeps.study); the launching process only watches the storage and draws the progress. A
worker dies with its launcher (Linux parent-death signal), so a killed launch leaves RUNNING trials
that the next launch re-queues, never orphans that keep training. A worker stopped by its machine (full
disk, unwritable folder) says why through a queue, and the launch ends with that one line (exit 2).

SIGINT or SIGTERM, to the launcher alone or to its whole process group (Ctrl-C), stops the sweep within seconds:
the launcher forwards SIGTERM to its workers, each cuts its run short (recorded ``interrupted``), re-queues its trial
and exits (sweeps.stop); a worker still alive after STOP_SECONDS is killed and its trial re-queued here. One line
says what was re-queued, and the exit status is 130 (SIGINT) or 143 (SIGTERM).
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
from typing import Callable

import optuna
from rich.console import Console

from ..config import machine_error
from .spec import SweepSpec, load_sweep
from .status import Tally, interrupted_numbers, tally
from .stop import StopSignals, requested, started, worker_entry
from .store import heartbeat_seconds, host_name, make_storage, redact, sweep_folder
from .study import (LAUNCHER, awaiting, beat_launcher, budget_bounded, claim, prepare, register_launcher,
                    requeue_interrupted)

POLL_SECONDS = 2.0
STOP_SECONDS = 15.0  # a stopped worker that has not re-queued its trial and exited by then is killed
AWAIT_SECONDS = 5.0  # a worker with nothing to claim checks this often whether others' trials finished or went stale


def launch(path: str | Path, workers: int | None = None, storage: str | None = None, force_new: bool = False,
           console: Console | None = None, signals: StopSignals | None = None) -> Tally:
    """Run the sweep file's trials (continuing an existing sweep); the final tally. ``signals``: the stop signals
    caught since the command started (the CLI catches them before its heavy imports), else caught from here on."""
    console = console or Console(stderr=True)
    _quiet()
    signals = signals or StopSignals()
    try:
        spec = load_sweep(path)
        url = storage or spec.storage
        workers = workers or spec.workers
        folder = sweep_folder(spec.name).resolve()
        study = prepare(spec, folder, url, force_new)
        key = register_launcher(study)
        try:
            return _run(study, spec, folder, url, workers, console, signals)
        finally:
            beat_launcher(study, key, ended=True)
    finally:
        signals.restore()


def _run(study: optuna.Study, spec: SweepSpec, folder: Path, url: str | None, workers: int, console: Console,
         signals: StopSignals) -> Tally:
    requeued = requeue_interrupted(study, folder)
    if requeued:
        console.print(f"re-queued trials interrupted by a dead process: {requeued}")
    before = interrupted_numbers(study.get_trials(deepcopy=False))
    deadline = time.time() + spec.budget.minutes * 60 if spec.budget.minutes else None
    shown = redact(url) if url else "journal file"  # a URL's password never reaches the console
    console.print(f"sweep [bold]{spec.name}[/]: folder {folder}, storage {shown}, {workers} worker(s)")
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    stopped = context.SimpleQueue()
    processes = [context.Process(target=worker_entry, name=f"sweep-worker-{i}",
                                 args=(spec.model_dump_json(), str(folder), url, deadline, threads, i, os.getpid(),
                                       stopped))
                 for i in range(workers)]
    if not signals.received:
        for process in processes:
            process.start()
    try:
        counts = _watch(study, processes, budget_bounded(spec), console, signals)
    finally:
        if signals.received:
            _stop_workers(processes)
        for process in processes:
            if process.pid is not None:
                process.join()
    if signals.received:
        requeued = requeue_interrupted(study, folder)  # trials of workers that had to be killed
        again = sorted(interrupted_numbers(study.get_trials(deepcopy=False)) - before)
        name = signal.Signals(signals.received).name
        print(f"stopped by {name}: workers stopped, interrupted trial(s) {again or 'none'} re-queued for the next "
              f"launch{f' ({len(requeued)} of them killed after {STOP_SECONDS:.0f} s)' if requeued else ''}",
              file=sys.stderr)
        raise SystemExit(128 + signals.received)
    if not stopped.empty():
        raise OSError(*stopped.get())  # its trial is re-queued for the next launch
    crashed = [p.name for p in processes if p.exitcode != 0]
    if crashed:
        console.print(f"[red]worker process(es) {', '.join(crashed)} exited abnormally[/]")
        raise SystemExit(1)
    return counts


def _stop_workers(processes: list) -> None:
    """SIGTERM to every live worker (each cuts its run short and re-queues its trial); SIGKILL after STOP_SECONDS."""
    started = [p for p in processes if p.pid is not None]
    for process in started:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in started:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in started:
        if process.is_alive():
            process.kill()


def _watch(study: optuna.Study, processes: list, bounded: bool, console: Console, signals: StopSignals) -> Tally:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[line]}"))
    beat_every, beaten = heartbeat_seconds()[0], time.monotonic()
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("trials", total=None, line="starting workers")
        while True:
            alive = any(p.is_alive() for p in processes)
            counts = tally(study.get_trials(deepcopy=False))
            total = counts.finished + counts.running + counts.waiting if bounded else None
            bar.update(task, completed=counts.finished, total=total, line=counts.line())
            if not alive or signals.received:
                return counts
            if time.monotonic() - beaten > beat_every:  # other machines see this launcher alive (sweeps.study)
                beat_launcher(study, f"{LAUNCHER}{host_name()}:{os.getpid()}")
                beaten = time.monotonic()
            _sleep(POLL_SECONDS, lambda: signals.received)


def worker_main(spec_json: str, folder: str, url: str | None, deadline: float | None, threads: int, index: int,
                parent: int, stopped: multiprocessing.SimpleQueue) -> None:
    """One worker: claim and run trials until the budget or wall time is spent; its machine's failure → ``stopped``."""
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
    _quiet()
    import torch

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
            _sleep(AWAIT_SECONDS, requested)  # a dead machine's trial comes back WAITING once its beat is stale
            requeue_interrupted(study, Path(folder))
            continue
        with heartbeat(study, trial):
            run_trial(study, trial, spec, Path(folder))


def _sleep(seconds: float, until: Callable[[], object]) -> None:
    """Sleep, waking early when ``until()`` turns true (a stop signal)."""
    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _quiet() -> None:
    """The progress display says what Optuna's per-trial log lines and library notices would."""
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
    seed = spec.sampler_seed + index
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """Pruner steps run over seed position × steps (sweeps.trial); no pruning inside the first half-seed."""
    steps = spec.run_config(spec.objectives[0], {}, {}, spec.seeds[0]).max_steps
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=steps // 2)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, steps // 2), max_resource=steps * len(spec.seeds))
    return optuna.pruners.NopPruner()
