"""Writing a replay: the token and gradient tables (CSV), the summary (JSON, Markdown) and the figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .figures import cosine_figure, scatter_figure, token_figure
from .gradients import RunReplay
from .markdown import markdown
from .statistics import gradient_rows, summarise, telling_step, token_rows


def write_replay(replays: Sequence[RunReplay], out: Path, title: str) -> dict[str, Path]:
    """tokens.csv, gradients.csv, replay.json, replay.md and the figures into ``out`` (created); their paths."""
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
    paths["replay.json"].write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    for name, fig in (("cosine.png", cosine_figure(summary)), ("tokens.png", token_figure(summary)),
                      ("tokens_step.png", scatter_figure(step))):
        fig.savefig(out / name, dpi=110, metadata={"Software": None})
        import matplotlib.pyplot as plt

        plt.close(fig)
        paths[name] = out / name
    paths["replay.md"].write_text(markdown(summary, title, step.step))
    return paths
