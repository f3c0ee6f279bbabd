"""Several processes (torchrun, accelerate launch): which rank does what, and diagnostics from every rank.

A run launched on N processes trains with DDP and every rank samples its own share of the prompts. Only the
main process writes the run record, so what it logs is first combined from every rank: means over tokens
weighted by each rank's token count, ``*/max`` as the maximum over ranks, per-token values concatenated
(ranks hold different numbers of tokens). Work done once (the held-out evaluation, filling the policy cache)
runs on the main process while the others wait; its failure is raised on every rank, so no rank hangs. In
one process every helper here just calls or returns what it is given.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather

from .config import ConfigError

T = TypeVar("T")

# How long a rank waits for the others in one collective before failing instead of hanging. The held-out
# evaluation runs on the main process while the others wait at a broadcast, so this also bounds one evaluation.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


class Terminated(Exception):
    """The launcher stopped this process: torchrun sends SIGTERM to every rank when one of them fails."""


def processes() -> PartialState:
    """The launch's processes; the first call joins the process group torchrun or accelerate set up (gloo on CPU)."""
    return PartialState(cpu=not torch.cuda.is_available(), timeout=COLLECTIVE_TIMEOUT)


def _attempt(fn: Callable[[], T]) -> tuple[T | None, Exception | None]:
    try:
        return fn(), None
    except Exception as err:  # noqa: BLE001 - handed to the other ranks, then raised again
        return None, err


def _for_peers(error: Exception | None) -> Exception | None:
    """What the other ranks raise for a failure of the main process (always picklable)."""
    if error is None or isinstance(error, ConfigError):
        return None if error is None else ConfigError(str(error))
    first_line = str(error).splitlines()[0] if str(error) else ""
    return RuntimeError(f"the main process failed: {type(error).__name__}: {first_line}")


def _on_main(fn: Callable[[], T], share_value: bool) -> tuple[T | None, bool]:
    """fn() on the main process, its outcome broadcast; returns (value, ran_here) or raises the failure everywhere."""
    state = processes()
    value, error = _attempt(fn) if state.is_main_process else (None, None)
    box: list[Any] = [(value if share_value else None, _for_peers(error))]
    broadcast_object_list(box)
    if error is not None:
        raise error
    shared, peer_error = box[0]
    if peer_error is not None:
        raise peer_error
    return (value, True) if state.is_main_process else (shared, False)


def main_then_share(fn: Callable[[], T]) -> T:
    """fn() on the main process only while the others wait; every rank returns its result or raises its failure."""
    if processes().num_processes == 1:
        return fn()
    return _on_main(fn, share_value=True)[0]


def main_first(fn: Callable[[], T]) -> T:
    """fn() on the main process, then on the others (e.g. the first fills a cache the others read)."""
    if processes().num_processes == 1:
        return fn()
    value, ran_here = _on_main(fn, share_value=False)
    return value if ran_here else fn()


EXTREMES = {"/max": torch.max, "_max": torch.max, "_min": torch.min}  # name suffix → how ranks combine it


def combine_token_metrics(metrics: dict[str, float], tokens: int) -> dict[str, float]:
    """Each rank's means over its ``tokens`` valid tokens → the means over every rank's tokens; ``*/max`` and
    ``*_max`` → the max, ``*_min`` → the min over the ranks that had tokens (``correction/raw_ratio_min``).

    Every rank must pass the same keys (one collective).
    """
    state = processes()
    if state.num_processes == 1:
        return metrics
    keys = sorted(metrics)
    extreme = {k: next((f for suffix, f in EXTREMES.items() if k.endswith(suffix)), None) for k in keys}
    row = [float(tokens)] + [metrics[k] if extreme[k] else metrics[k] * tokens for k in keys]
    rows = gather(torch.tensor([row], dtype=torch.float64, device=state.device)).cpu()
    total = float(rows[:, 0].sum())
    some = rows[rows[:, 0] > 0] if total > 0 else rows
    return {k: float(extreme[k](some[:, i])) if extreme[k] else float(rows[:, i].sum()) / max(total, 1.0)
            for i, k in enumerate(keys, start=1)}


def gather_values(values: torch.Tensor) -> torch.Tensor:
    """The 1-D ``values`` of every rank concatenated in rank order; ranks may hold different numbers of them."""
    state = processes()
    if state.num_processes == 1:
        return values
    sizes = gather(torch.tensor([values.numel()], device=values.device)).tolist()
    longest = max(sizes)
    if longest == 0:
        return values
    padded = torch.cat([values, values.new_zeros(longest - values.numel())])  # gather needs equal shapes
    rows = gather(padded).view(len(sizes), longest)
    return torch.cat([row[:n] for row, n in zip(rows, sizes)])


def gather_arrays(arrays: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-token values of every rank, per name of ``names``; a name is kept when any rank holds it."""
    state = processes()
    if state.num_processes == 1:
        return arrays
    held = gather(torch.tensor([[name in arrays for name in names]], device=state.device)).any(dim=0).tolist()
    empty = np.empty(0, dtype=np.float32)
    return {name: gather_values(torch.from_numpy(np.asarray(arrays.get(name, empty), dtype=np.float32)).to(
                state.device)).numpy(force=True)
            for name, kept in zip(names, held) if kept}


@contextmanager
def sigterm_fails_the_run() -> Iterator[None]:
    """With several processes, SIGTERM raises Terminated, so the main process closes its record as failed.

    One process keeps the default (a sweep worker that is stopped leaves an interrupted run to re-run).
    """
    if processes().num_processes == 1:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated("stopped by SIGTERM: another process of the launch failed (see its log) or the launch "
                         "was cancelled")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
