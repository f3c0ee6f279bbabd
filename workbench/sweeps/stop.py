"""Stopping a sweep on SIGINT or SIGTERM, whether the signal reaches the launcher alone (``kill -INT``, a supervisor,
``timeout``) or the whole process group (Ctrl-C in a terminal).

A worker treats either signal the same way: while a run trains, the signal raises KeyboardInterrupt at once (the run
closes its record as ``interrupted``, the trial is failed as interrupted and re-queued with its parameters, the
worker exits quietly); anywhere else (loading a model, claiming a trial, writing to the storage) it only asks the
worker to stop at the next safe point, so no storage write is cut in the middle. The first signal is the stop: later
ones (Ctrl-C reaches a worker, then the launcher forwards SIGTERM) are ignored while it unwinds. A worker still
starting (importing torch, opening the study: it holds nothing yet, writes nothing) just exits.

This module imports nothing heavy: a worker process (sweeps.worker) installs its handlers from here before importing
torch and TRL, so a signal in its first seconds is not a traceback.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The launcher's side: SIGINT and SIGTERM are remembered (the first one) and the launch stops its workers at
    its next look (sweeps.launch); ``restore`` puts the previous handlers back."""

    def __init__(self) -> None:
        self.received = 0
        self.previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}

    def _on_signal(self, signum: int, frame: object) -> None:
        self.received = self.received or signum

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class _Gate:
    requested = 0  # the stop signal received, 0 while none
    starting = True  # importing and opening the study, nothing claimed yet: a stop signal ends the process at once
    armed = False  # inside a run: a stop signal raises KeyboardInterrupt at once


def requested() -> int:
    """The stop signal this process received (0: none)."""
    return _Gate.requested


def install_worker_handlers() -> None:
    def stop(signum: int, frame: Any) -> None:
        # One stop: its unwinding is not interrupted by the next signal. (Not by switching to SIG_IGN here: a signal
        # already pending would then raise "OSError: Signal 15 ignored due to race condition".)
        if _Gate.requested:
            return
        _Gate.requested = signum
        if _Gate.starting:  # an exception could be swallowed by an import's own handler: leave at once
            os._exit(0)
        if _Gate.armed:
            _Gate.armed = False
            raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)


def started() -> None:
    """The worker is about to claim trials: from now on a stop signal lets it finish or re-queue what it holds."""
    _Gate.starting = False
    if _Gate.requested:
        os._exit(0)


@contextmanager
def interruptible() -> Iterator[None]:
    """A run's training: a stop signal, now or during it, raises KeyboardInterrupt here."""
    _Gate.armed = True
    try:
        if _Gate.requested:  # after arming: a signal in between is not missed
            raise KeyboardInterrupt
        yield
    finally:
        _Gate.armed = False


@contextmanager
def deferred() -> Iterator[None]:
    """A storage write inside a run (an intermediate value): a stop signal waits until it is done."""
    armed, _Gate.armed = _Gate.armed, False
    try:
        yield
    finally:
        _Gate.armed = armed
    if armed and _Gate.requested:
        _Gate.armed = False
        raise KeyboardInterrupt
