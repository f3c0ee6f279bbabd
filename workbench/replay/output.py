"""Writing a replay: the token and gradient tables (CSV), the summary (JSON, Markdown) and the figures; and reading a
saved summary back when it is still current."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..batches import step_folder
from .figures import cosine_figure, scatter_figure, token_figure
from .gradients import RunReplay
from .markdown import markdown
from .statistics import gradient_rows, summarise, telling_step, token_rows


def write_replay(replays: Sequence[RunReplay], out: Path, title: str, inputs: dict[str, Any]) -> dict[str, Path]:
    """tokens.csv, gradients.csv, replay.json (with ``inputs``, :func:`replay_inputs`), replay.md and the figures
    into ``out`` (created); their paths."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    token_frame = pd.DataFrame([{"run": str(rr.run_dir), **row} for rr in replays for s in rr.steps
                                for row in token_rows(s)])
    grad_frame = pd.DataFrame([{"run": str(rr.run_dir), **row} for rr in replays for s in rr.steps
                               for row in gradient_rows(s)])
    summary = summarise(replays)
    step = telling_step(replays)
    paths = {"tokens.csv": out / "tokens.csv", "gradients.csv": out / "gradients.csv",
             "replay.json": out / "replay.json", "replay.md": out / "replay.md"}
    token_frame.to_csv(paths["tokens.csv"], index=False, float_format="%.9g")
    grad_frame.to_csv(paths["gradients.csv"], index=False, float_format="%.9g")
    save_summary(paths["replay.json"], summary, inputs)
    for name, fig in (("cosine.png", cosine_figure(summary)), ("tokens.png", token_figure(summary)),
                      ("tokens_step.png", scatter_figure(step))):
        fig.savefig(out / name, dpi=110, metadata={"Software": None})
        import matplotlib.pyplot as plt

        plt.close(fig)
        paths[name] = out / name
    paths["replay.md"].write_text(markdown(summary, title, step.step))
    return paths


def replay_inputs(steps: Mapping[Path, Sequence[int]], objectives: Sequence[str],
                  corrections: Sequence[str] = ()) -> dict[str, Any]:
    """What a summary is computed from: the arms asked for, each run's replayed steps, and a fingerprint of those
    steps' kept files (name, size, modification time), which changes when a kept batch is rewritten or touched."""
    digest = hashlib.sha256()
    for run, run_steps in steps.items():
        for step in run_steps:
            for file in sorted(step_folder(run, step).iterdir()):
                stat = file.stat()
                digest.update(f"{run}/{step}/{file.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return {"objectives": list(objectives), "corrections": list(corrections),
            "steps": {str(run): list(run_steps) for run, run_steps in steps.items()}, "batches": digest.hexdigest()}


def save_summary(path: Path, summary: dict[str, Any], inputs: dict[str, Any]) -> None:
    """The summary and its inputs as JSON, keys in their order (so a summary read back equals the one computed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**summary, "inputs": inputs}, indent=1) + "\n")


def saved_summary(path: Path, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The summary saved at ``path`` if it was computed from ``inputs`` (the same arms, runs and steps, and no kept
    batch changed since), else None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or cut short: replay again
        return None
    return {k: v for k, v in saved.items() if k != "inputs"} if saved.get("inputs") == inputs else None
