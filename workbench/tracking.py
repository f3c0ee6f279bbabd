"""Where a run's record goes: the local run store (always) and Weights & Biases (offline by default).

A run folder holds

    config.json        the RunConfig, as validated
    scalars.jsonl      one line per logged step: {"step", "wall_time", <metric>: value, ...}
    histograms.jsonl   one line per histogram: {"step", "name", "edges": [...], "counts": [...]}
    summary.json       status, seed, versions, machine (CPU, kernels, threads), wall time, base and final eval,
                       flags, W&B run path, stability (collapse_step, max_grad_norm, nonfinite_loss)

Lines are appended and flushed as they are produced and summary.json is replaced atomically, so a
killed run keeps everything it logged; reports read this folder, never W&B's servers.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

STATUS_RUNNING, STATUS_FINISHED, STATUS_FAILED = "running", "finished", "failed"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def histogram(values: np.ndarray, bins: int,
              value_range: tuple[float, float] | None = None) -> tuple[list[float], list[int]]:
    """Bin edges and counts over the finite values: on ``value_range`` when given, else symmetric around 0,
    so that runs compare bin by bin."""
    values = values[np.isfinite(values)]
    if value_range is None:
        bound = float(np.max(np.abs(values))) if values.size else 1.0
        bound = bound if bound > 0 else 1.0
        value_range = (-bound, bound)
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    return edges.tolist(), counts.tolist()


def versions() -> dict[str, str]:
    """Versions that decide whether two runs are comparable."""
    import torch
    import transformers
    import trl

    from . import __version__

    return {
        "workbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def machine() -> dict[str, Any]:
    """The machine a run computed on, which decides whether two runs' floats can agree: the same code and seed
    give the same numbers only on the same CPU kernels (instruction set torch dispatches to, math libraries)
    and thread count; anywhere else a run is a fresh draw."""
    import torch

    config = torch.__config__.show()

    def found(pattern: str) -> str | None:
        match = re.search(pattern, config)
        return match.group(1) if match else None

    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "mkl": found(r"Math Kernel Library Version ([0-9.]+)") if torch.backends.mkl.is_available() else None,
        "onednn": found(r"MKL-DNN v([^\s]+)") if torch.backends.mkldnn.is_available() else None,
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


COLLAPSE_WINDOW = 10  # steps in the moving average of reward/mean that collapse_step reads


def collapse_step(rewards: list[tuple[int, float]], window: int = COLLAPSE_WINDOW) -> int | None:
    """The step from which the run stayed collapsed to its end, or None.

    ``rewards`` are (step, reward/mean) in step order. With m_i the mean of the ``window`` rewards ending at i
    and p_i = max(m_1 … m_i) its running peak, a run has collapsed from the first i such that m_j < p_j / 2 for
    every j ≥ i to the last step (a dip that recovers above half the peak is not a collapse). Only full windows
    count, and a peak ≤ 0 never collapses (half of it is no drop).
    """
    values = [r for _, r in rewards]
    if len(values) < window:
        return None
    sums = np.cumsum([0.0, *values])
    averages = (sums[window:] - sums[:-window]) / window  # m_i for i = window−1 … n−1
    peaks = np.maximum.accumulate(averages)
    below = (averages < peaks / 2) & (peaks > 0)
    if not below[-1]:
        return None
    start = len(below) - int(np.argmin(below[::-1])) if not below.all() else 0
    return int(rewards[start + window - 1][0])


class PeerRecorder:
    """A run's record kept in memory: the summary and the run's stability, nothing written. It is the recorder of a
    rank other than the main process (the main process holds the run record and the W&B run; the others train and
    sample), and the base of :class:`RunRecorder`, which also writes the record.

    It follows the run's stability as the steps go by (``reward/mean``, ``grad_norm``, a non-finite ``loss`` or
    ``grad_norm``) and puts ``collapse_step``, ``max_grad_norm`` and ``nonfinite_loss`` into the summary at the end.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], wandb_run: Any | None = None):
        self.run_dir = Path(run_dir)
        self.wandb_run = wandb_run
        self.started = time.time()
        self.summary: dict[str, Any] = {"status": STATUS_RUNNING, "seed": config.get("seed"),
                                        "objective": config.get("objective"), "flags": [],
                                        "wandb": _wandb_location(wandb_run)}
        self._rewards: list[tuple[int, float]] = []
        self._max_grad_norm: float | None = None
        self._nonfinite_loss = False

    def log_scalars(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """Follow the run's stability; returns the metrics to record (NaN, not valid JSON, is left out: the
        summary's nonfinite_loss says so when it was the loss or the gradient norm)."""
        if not all(np.isfinite(metrics[k]) for k in ("loss", "grad_norm") if k in metrics):
            self.note_nonfinite_loss()
        metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
        if "reward/mean" in metrics:
            self._rewards.append((step, float(metrics["reward/mean"])))
        norm = metrics.get("grad_norm")
        if norm is not None and np.isfinite(norm):
            self._max_grad_norm = max(float(norm), self._max_grad_norm or 0.0)
        return metrics

    def log_histograms(self, step: int, values: dict[str, np.ndarray], bins: int,
                       ranges: dict[str, tuple[float, float]] | None = None) -> None:
        pass

    def note_nonfinite_loss(self) -> None:
        """The loss or the gradient norm was not finite (seen in a log line, or the trainer raised on it)."""
        self._nonfinite_loss = True

    def stability(self) -> dict[str, Any]:
        """collapse_step (by :func:`collapse_step`), max_grad_norm (the largest logged, before clipping) and
        nonfinite_loss, as written into the summary when the run finishes."""
        return {"collapse_step": collapse_step(self._rewards), "max_grad_norm": self._max_grad_norm,
                "nonfinite_loss": self._nonfinite_loss}

    def update_summary(self, **fields: Any) -> None:
        self.summary.update(fields)

    def flag(self, flag: str) -> None:
        if flag not in self.summary["flags"]:
            self.summary["flags"].append(flag)
        self.update_summary()

    def finish(self, status: str, **fields: Any) -> None:
        self.update_summary(status=status, wall_time=time.time() - self.started, **fields)


class RunRecorder(PeerRecorder):
    """Appends a run's scalars and histograms to its folder, mirrors them to W&B and writes its summary."""

    def __init__(self, run_dir: Path, config: dict[str, Any], wandb_run: Any | None = None):
        super().__init__(run_dir, config, wandb_run)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_dir / "config.json", config)
        self._scalars = open(self.run_dir / "scalars.jsonl", "a")
        self._histograms = open(self.run_dir / "histograms.jsonl", "a")
        self.summary.update(versions=versions(), machine=machine(), started=self.started)
        self.update_summary()

    def log_scalars(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        metrics = super().log_scalars(step, metrics)
        row = {"step": step, "wall_time": time.time() - self.started, **metrics}
        self._scalars.write(json.dumps(row) + "\n")
        self._scalars.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)
        return metrics

    def log_histograms(self, step: int, values: dict[str, np.ndarray], bins: int,
                       ranges: dict[str, tuple[float, float]] | None = None) -> None:
        wandb_payload = {}
        for name, array in values.items():
            edges, counts = histogram(np.asarray(array, dtype=np.float64), bins, (ranges or {}).get(name))
            self._histograms.write(json.dumps({"step": step, "name": name, "edges": edges, "counts": counts}) + "\n")
            if self.wandb_run is not None:
                import wandb

                wandb_payload[name] = wandb.Histogram(np_histogram=(counts, edges))
        self._histograms.flush()
        if wandb_payload:
            self.wandb_run.log(wandb_payload, step=step)

    def update_summary(self, **fields: Any) -> None:
        super().update_summary(**fields)
        write_json_atomic(self.run_dir / "summary.json", self.summary)

    def finish(self, status: str, **fields: Any) -> None:
        """Close the record; a W&B failure never loses the local one."""
        self._scalars.close()
        self._histograms.close()
        self.update_summary(status=status, wall_time=time.time() - self.started, **self.stability(), **fields)
        if self.wandb_run is not None:
            self.wandb_run.summary.update({k: v for k, v in fields.items() if isinstance(v, (int, float, str))})
            self.wandb_run.finish(exit_code=0 if status == STATUS_FINISHED else 1)


# ---- W&B -----------------------------------------------------------------------------------------


def wandb_logged_in() -> bool:
    """True when an API key is configured (environment or netrc); never prompts."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """auto → online when logged in, offline otherwise; WANDB_MODE in the environment wins over auto."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("offline", "online", "disabled"):
        return env
    return "online" if wandb_logged_in() else "offline"


def start_wandb(run_dir: Path, config: dict[str, Any], name: str, mode: str, project: str,
                group: str | None, job_type: str) -> Any | None:
    """A W&B run whose files live inside the run folder; None when tracking is disabled."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=project,
        group=group,
        job_type=job_type,
        name=name,
        config=config,
        dir=str(run_dir),
        mode=mode,
        reinit="finish_previous",
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


def _wandb_location(wandb_run: Any | None) -> dict[str, Any] | None:
    if wandb_run is None:
        return None
    return {"id": wandb_run.id, "dir": str(Path(wandb_run.dir).parent), "mode": wandb_run.settings.mode}


# ---- reading ---------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """A run folder read back: the report and the sweeps use only this."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    scalars: list[dict[str, Any]]
    histograms: list[dict[str, Any]]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the last line of a killed run may be cut short
            break
    return rows


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run folder written by :class:`RunRecorder`."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no summary.json)")
    return RunRecord(
        path=run_dir,
        config=json.loads((run_dir / "config.json").read_text()),
        summary=json.loads(summary_path.read_text()),
        scalars=_read_jsonl(run_dir / "scalars.jsonl"),
        histograms=_read_jsonl(run_dir / "histograms.jsonl"),
    )
