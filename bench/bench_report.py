"""Time `workbench report build` on a synthetic store: 100 runs × 200 steps (20 arms × 5 seeds).

The store is written through the real run-record writer (RunRecorder) and a real Optuna journal in the
sweep-store layout; its numbers come from a noisy learning-curve model. The timed part is the whole
build (load, statistics, every figure, Markdown, HTML), in-process, after one untimed warm-up that
pays for imports. Records the median in bench/results/report.json (goal ≤ 10 s on 2 cores).

    python bench/bench_report.py [--reps 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analysis"))
from contract import synthetic_sweep  # noqa: E402

from workbench.analysis import build_report  # noqa: E402

GOAL_SECONDS = 10.0
DELTAS = (0.05, 0.15, 12.5)


def arms() -> list[tuple[str, dict, dict]]:
    """Per precision: grpo, dppo_tv at three δ, drpo at three δ × two advantage weightings (10 arms)."""
    out = []
    for precision in ("bf16", "fp16"):
        fields = {"rollout_precision": precision}
        out.append(("grpo", {}, fields))
        out += [("dppo_tv", {"delta": d}, fields) for d in (0.05, 0.15, 0.5)]
        out += [("drpo", {"delta": d, "advantage_weight": w}, fields) for w in ("abs", "const") for d in DELTAS]
    return out


def skill(objective: str, params: dict, fields: dict) -> float:
    bonus = {"grpo": 0.0, "dppo_tv": 0.03, "drpo": 0.05}[objective] - 0.02 * (fields["rollout_precision"] == "fp16")
    return 0.5 + bonus - 0.01 * abs(np.log10(params.get("delta", 0.15) / 0.15))


def write_store(root: Path, steps: int, seeds: int) -> str:
    distributions = {"objective": CategoricalDistribution(["grpo", "dppo_tv", "drpo"]),
                     "delta": FloatDistribution(0.01, 20, log=True),
                     "advantage_weight": CategoricalDistribution(["abs", "const"]),
                     "rollout_precision": CategoricalDistribution(["bf16", "fp16"])}
    synthetic_sweep(root, "bench", arms(), list(range(seeds)), steps, distributions, np.random.default_rng(0), skill)
    return "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the store and the report here instead of a temp folder")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = opts.keep or Path(scratch)
        start = time.perf_counter()
        name = write_store(root / "sweeps", opts.steps, opts.seeds)
        generated = time.perf_counter() - start
        build_report(name, root / "report", root=root / "sweeps")  # warm-up: imports, font cache
        times = []
        for _ in range(opts.reps):
            start = time.perf_counter()
            built = build_report(name, root / "report", root=root / "sweeps")
            times.append(time.perf_counter() - start)
    runs = len(built.sweep.runs)
    result = {"runs": runs, "steps": opts.steps, "reps": opts.reps, "threads": os.cpu_count(),
              "build_seconds_median": round(statistics.median(times), 3), "build_seconds": [round(t, 3) for t in times],
              "store_generation_seconds": round(generated, 1), "goal": f"build ≤ {GOAL_SECONDS} s"}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "report.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
