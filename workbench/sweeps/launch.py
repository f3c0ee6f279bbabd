"""`workbench sweep launch`: prepare the study, start N worker processes, show progress until they end.

Workers are spawned processes that each claim trials from the shared storage until the budget is
spent (see sweeps.study); the launching process only watches the storage and draws the progress. A
worker dies with its launcher (Linux parent-death signal), so a killed launch leaves RUNNING trials
that the next launch re-queues, never orphans that keep training. A worker stopped by its machine (full
disk, unwritable folder) says why through a queue, and the launch ends with that one line (exit 2).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import optuna
from rich.console import Console

from ..config import machine_error
from .spec import SweepSpec, load_sweep
from .status import Tally, tally
from .store import make_storage, redact, sweep_folder
from .study import awaiting, budget_bounded, claim, prepare, requeue_interrupted
from .trial import heartbeat, run_trial

POLL_SECONDS = 2.0
AWAIT_SECONDS = 5.0  # a worker with nothing to claim checks this often whether others' trials finished or went stale


def launch(path: str | Path, workers: int | None = None, storage: str | None = None, force_new: bool = False,
           console: Console | None = None) -> Tally:
    """Run the sweep file's trials (continuing an existing sweep); the final tally."""
    console = console or Console(stderr=True)
    _quiet()
    spec = load_sweep(path)
    url = storage or spec.storage
    workers = workers or spec.workers
    folder = sweep_folder(spec.name).resolve()
    study = prepare(spec, folder, url, force_new)
    requeued = requeue_interrupted(study)
    if requeued:
        console.print(f"re-queued trials interrupted by a dead process: {requeued}")
    deadline = time.time() + spec.budget.minutes * 60 if spec.budget.minutes else None
    shown = redact(url) if url else "journal file"  # a URL's password never reaches the console
    console.print(f"sweep [bold]{spec.name}[/]: folder {folder}, storage {shown}, {workers} worker(s)")
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    stopped = context.SimpleQueue()
    processes = [context.Process(target=worker_main, name=f"sweep-worker-{i}",
                                 args=(spec.model_dump_json(), str(folder), url, deadline, threads, i, os.getpid(),
                                       stopped))
                 for i in range(workers)]
    for process in processes:
        process.start()
    try:
        counts = _watch(study, processes, budget_bounded(spec), console)
    finally:
        for process in processes:
            process.join()
    if not stopped.empty():
        raise OSError(*stopped.get())  # its trial is re-queued for the next launch
    crashed = [p.name for p in processes if p.exitcode != 0]
    if crashed:
        console.print(f"[red]worker process(es) {', '.join(crashed)} exited abnormally[/]")
        raise SystemExit(1)
    return counts


def _watch(study: optuna.Study, processes: list, bounded: bool, console: Console) -> Tally:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[line]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("trials", total=None, line="starting workers")
        while True:
            alive = any(p.is_alive() for p in processes)
            counts = tally(study.get_trials(deepcopy=False))
            total = counts.finished + counts.running + counts.waiting if bounded else None
            bar.update(task, completed=counts.finished, total=total, line=counts.line())
            if not alive:
                return counts
            time.sleep(POLL_SECONDS)


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

    torch.set_num_threads(threads)
    spec = SweepSpec.model_validate_json(spec_json)
    study = optuna.load_study(study_name=spec.name, storage=make_storage(Path(folder), url),
                              sampler=make_sampler(spec, index), pruner=make_pruner(spec))
    bounded = budget_bounded(spec)
    while (deadline is None or time.time() < deadline) and stopped.empty():  # empty: no worker's machine failed
        trial = claim(study, bounded)
        if trial is None:
            if not awaiting(study):
                return
            time.sleep(AWAIT_SECONDS)  # a dead machine's trial comes back WAITING once its beat is stale
            requeue_interrupted(study)
            continue
        with heartbeat(study, trial):
            run_trial(study, trial, spec, Path(folder))


def _quiet() -> None:
    """The progress display says what Optuna's per-trial log lines and library notices would."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


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
