"""Cost of every registered objective, forward and backward, as a ratio to `grpo`.

One (64, 4096) fp32 batch, a ragged mask, μ off π by up to ±0.3 in log. Repetitions are interleaved
in a shuffled order so that machine noise hits every objective alike; each objective's time is its
median. Prints the table and records it in bench/results/objectives.json (ratios, not absolute
times, are the result: goal ≤ 1.5 for drpo, spo, dppo_tv and dppo_kl).

    python bench/bench_objectives.py [--reps 30] [--shape 64 4096]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from workbench.objectives import available_objectives, get_objective

GOAL = {"drpo": 1.5, "spo": 1.5, "dppo_tv": 1.5, "dppo_kl": 1.5}


def make_batch(shape: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    logp = -4 * torch.rand(shape, generator=gen)
    behaviour_logp = (logp + 0.6 * torch.rand(shape, generator=gen) - 0.3).clamp(max=0)
    advantages = torch.randn(shape[0], generator=gen)
    lengths = torch.randint(shape[1] // 4, shape[1] + 1, (shape[0],), generator=gen)
    mask = (torch.arange(shape[1]) < lengths[:, None]).float()
    return logp, behaviour_logp, advantages, mask


def time_once(name: str, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> float:
    """Seconds for the objective's forward (metrics included) and the backward of its summed loss."""
    logp, behaviour_logp, advantages, mask = batch
    objective = get_objective(name)
    leaf = logp.clone().requires_grad_()
    start = time.perf_counter()
    out = objective(leaf, behaviour_logp, advantages, mask, generator=generator)
    out.per_token_loss.sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 4096))
    opts = parser.parse_args()
    names = available_objectives()
    batch = make_batch(tuple(opts.shape))
    generator = torch.Generator().manual_seed(0)
    order = random.Random(0)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: first calls pay for allocation
        time_once(name, batch, generator)
    for _ in range(opts.reps):
        order.shuffle(names)
        for name in names:
            times[name].append(time_once(name, batch, generator))
    medians = {name: statistics.median(t) for name, t in sorted(times.items())}
    ratios = {name: m / medians["grpo"] for name, m in medians.items()}

    print(f"forward + backward on a {tuple(opts.shape)} batch, median of {opts.reps} interleaved repetitions, "
          f"{torch.get_num_threads()} threads")
    print(f"{'objective':10s} {'ms':>8s} {'× grpo':>8s}  goal")
    for name, ratio in sorted(ratios.items(), key=lambda kv: kv[1]):
        goal = GOAL.get(name)
        verdict = "" if goal is None else f"≤ {goal} {'ok' if ratio <= goal else 'MISSED'}"
        print(f"{name:10s} {medians[name] * 1e3:8.2f} {ratio:8.2f}  {verdict}")
    result = {"shape": list(opts.shape), "reps": opts.reps, "threads": torch.get_num_threads(),
              "ratio_to_grpo": {k: round(v, 3) for k, v in ratios.items()},
              "median_ms": {k: round(v * 1e3, 3) for k, v in medians.items()},
              "goal": {k: f"ratio <= {v}" for k, v in GOAL.items()}}
    out = Path(__file__).parent / "results" / "objectives.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
