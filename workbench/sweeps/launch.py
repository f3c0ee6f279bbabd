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

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import optuna
from rich.console import Console

from .spec import SweepSpec, load_sweep
from .status import Tally, interrupted_numbers, tally
from .stop import StopSignals
from .store import heartbeat_seconds, redact, sweep_folder
from .study import beat_launcher, budget_bounded, prepare, register_launcher, requeue_interrupted
from .worker import quiet_libraries, sleep_until, worker_entry

POLL_SECONDS = 2.0
STOP_SECONDS = 15.0  # a stopped worker that has not re-queued its trial and exited by then is killed


def launch(path: str | Path, workers: int | None = None, storage: str | None = None, force_new: bool = False,
           console: Console | None = None, signals: StopSignals | None = None) -> Tally:
    """Run the sweep file's trials (continuing an existing sweep); the final tally. ``signals``: the stop signals
    caught since the command started (the CLI catches them before its heavy imports), else caught from here on."""
    console = console or Console(stderr=True)
    quiet_libraries()
    signals = signals or StopSignals()
    try:
        spec = load_sweep(path)
        url = storage or spec.storage
        workers = workers or spec.workers
        folder = sweep_folder(spec.name).resolve()
        study = prepare(spec, folder, url, force_new)
        key = register_launcher(study)
        try:
            return _run(study, key, spec, folder, url, workers, console, signals)
        finally:
            beat_launcher(study, key, ended=True)
    finally:
        signals.restore()


def _run(study: optuna.Study, key: str, spec: SweepSpec, folder: Path, url: str | None, workers: int,
         console: Console, signals: StopSignals) -> Tally:
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
        counts = _watch(study, key, processes, budget_bounded(spec), console, signals)
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


def _watch(study: optuna.Study, key: str, processes: list, bounded: bool, console: Console,
           signals: StopSignals) -> Tally:
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
                beat_launcher(study, key)
                beaten = time.monotonic()
            sleep_until(POLL_SECONDS, lambda: signals.received)
