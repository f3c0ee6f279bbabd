"""Cost of every registered objective, forward and backward, as a ratio to `grpo`; the top-K path apart.

One (64, 4096) fp32 batch, a ragged mask, μ off π by up to ±0.3 in log. Repetitions are interleaved
in a shuffled order so that machine noise hits every objective alike; each objective's time is its
median. The top-K objectives are timed twice: without the sampler's top-K (K = 0, their binary
fallback) and with K = 8 (``<name>+top8``). The top-K path also costs the trainer the scoring of π
at the K ids from the forward's hidden states (``topk_scoring``: a d = 576 head over a 49k vocabulary,
SmolLM2-135M's shape), timed on the batch's first ``--scoring-rows`` rows (memory) and scaled to the
whole batch before the ratio to grpo. Every mismatch correction (``correction:<name>``: the weight and its metrics
from π_old = π, μ and A, no gradient) is timed on the same batch, also as a ratio to grpo: the trainer adds it to
the objective's cost. Prints the table and records it in
bench/results/objectives.json (ratios, not absolute times, are the result: goal ≤ 1.5 for drpo, spo,
dppo_tv and dppo_kl).

    python bench/bench_objectives.py [--reps 30] [--shape 64 4096] [--top-k 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from workbench.objectives import available_correction_presets, available_objectives, get_correction, get_objective, \
    get_spec
from workbench.topk import policy_logp_at, topk_set

GOAL = {"drpo": 1.5, "spo": 1.5, "dppo_tv": 1.5, "dppo_kl": 1.5}
HIDDEN, VOCAB = 576, 49152


def make_batch(shape: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    logp = -4 * torch.rand(shape, generator=gen)
    behaviour_logp = (logp + 0.6 * torch.rand(shape, generator=gen) - 0.3).clamp(max=0)
    advantages = torch.randn(shape[0], generator=gen)
    lengths = torch.randint(shape[1] // 4, shape[1] + 1, (shape[0],), generator=gen)
    mask = (torch.arange(shape[1]) < lengths[:, None]).float()
    return logp, behaviour_logp, advantages, mask


def make_top_k(logp: torch.Tensor, behaviour_logp: torch.Tensor, k: int, seed: int = 1):
    """(log π, log μ) at K head tokens besides the sampled one: each head token holds a share of the rest."""
    gen = torch.Generator().manual_seed(seed)
    share = torch.rand(*logp.shape, k, generator=gen)
    share = share / share.sum(-1, keepdim=True) * 0.9
    rest_mu, rest_pi = (-torch.expm1(behaviour_logp)).unsqueeze(-1), (-torch.expm1(logp)).unsqueeze(-1)
    ids = torch.arange(1, k + 1).expand(*logp.shape, k)
    sampled = torch.zeros(logp.shape, dtype=torch.long)
    return topk_set((share * rest_pi).log(), (share * rest_mu).log(), ids, logp, behaviour_logp, sampled)


def time_objective(name: str, batch: tuple[torch.Tensor, ...], generator: torch.Generator, **extra) -> float:
    """Seconds for the objective's forward (metrics included) and the backward of its summed loss."""
    logp, behaviour_logp, advantages, mask = batch
    objective = get_objective(name)
    leaf = logp.clone().requires_grad_()
    start = time.perf_counter()
    out = objective(leaf, behaviour_logp, advantages, mask, generator=generator, **extra)
    out.per_token_loss.sum().backward()
    return time.perf_counter() - start


# Each family at each level or aggregation, besides the presets.
CORRECTIONS = {"tis": {}, "tis/sequence": {"level": "sequence"}, "tis/geometric": {"level": "geometric"},
               "mis/token": {"level": "token", "low": 0.5}, "mis": {}, "opsm": {}, "rs/token_k3": {"metric": "k3",
               "agg": "token", "high": 0.01}, "rs/seq_max_k2": {"metric": "k2", "agg": "seq_max", "high": 0.01}}


def time_correction(name: str, params: dict, batch: tuple[torch.Tensor, ...]) -> float:
    """Seconds for the correction's weight and metrics (π_old = π: a batch's only update)."""
    logp, behaviour_logp, advantages, mask = batch
    correction = get_correction(name.partition("/")[0], **params)
    start = time.perf_counter()
    correction(logp, None, behaviour_logp, advantages, mask)
    return time.perf_counter() - start


def time_scoring(model: torch.nn.Module, hidden: torch.Tensor, logp: torch.Tensor, completion: torch.Tensor,
                 ids: torch.Tensor) -> float:
    """Seconds to score π at the K ids from hidden states (the trainer's extra work on the top-K path)."""
    start = time.perf_counter()
    policy_logp_at(model, hidden, logp, completion, ids, 1.0)
    return time.perf_counter() - start


class Head(torch.nn.Module):
    """Just what ``policy_logp_at`` reads: the output embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.lm_head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.lm_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 4096))
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--scoring-rows", type=int, default=8)
    opts = parser.parse_args()
    shape, k = tuple(opts.shape), opts.top_k
    batch = make_batch(shape)
    generator = torch.Generator().manual_seed(0)
    top_k = make_top_k(batch[0], batch[1], k)
    gen = torch.Generator().manual_seed(2)
    head = Head()
    rows = min(opts.scoring_rows, shape[0])
    hidden = torch.randn(rows, shape[1] + 1, HIDDEN, generator=gen)
    completion = torch.randint(0, VOCAB, (rows, shape[1]), generator=gen)
    ids = torch.randint(0, VOCAB, (rows, shape[1], k), generator=gen)

    jobs: dict[str, Callable[[], float]] = {name: (lambda n=name: time_objective(n, batch, generator))
                                            for name in available_objectives()}
    for name in available_objectives():
        if get_spec(name).uses_top_k:
            jobs[f"{name}+top{k}"] = lambda n=name: time_objective(n, batch, generator, top_k=top_k)
    corrections = {**CORRECTIONS, **{name: {} for name in available_correction_presets()}}
    for name, params in corrections.items():
        jobs[f"correction:{name}"] = lambda n=name, p=params: time_correction(n, p, batch)
    jobs["topk_scoring"] = lambda: time_scoring(head, hidden, batch[0][:rows], completion, ids) * shape[0] / rows
    names = list(jobs)
    order = random.Random(0)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: first calls pay for allocation
        jobs[name]()
    for _ in range(opts.reps):
        order.shuffle(names)
        for name in names:
            times[name].append(jobs[name]())
    medians = {name: statistics.median(t) for name, t in sorted(times.items())}
    ratios = {name: m / medians["grpo"] for name, m in medians.items()}

    print(f"forward + backward on a {shape} batch, median of {opts.reps} interleaved repetitions, "
          f"{torch.get_num_threads()} threads; top-K path with K = {k}")
    print(f"{'objective':18s} {'ms':>8s} {'× grpo':>8s}  goal")
    for name, ratio in sorted(ratios.items(), key=lambda kv: kv[1]):
        goal = GOAL.get(name)
        verdict = "" if goal is None else f"≤ {goal} {'ok' if ratio <= goal else 'MISSED'}"
        print(f"{name:18s} {medians[name] * 1e3:8.2f} {ratio:8.2f}  {verdict}")
    top_k_path = {name: round(ratios[name], 3) for name in ratios if "+top" in name or name == "topk_scoring"}
    correction_cost = {name: round(ratios[name], 3) for name in ratios if name.startswith("correction:")}
    result = {"shape": list(shape), "reps": opts.reps, "threads": torch.get_num_threads(), "top_k": k,
              "ratio_to_grpo": {n: round(v, 3) for n, v in ratios.items()
                                if n not in top_k_path and n not in correction_cost},
              "correction_ratio_to_grpo": correction_cost,
              "top_k_path_ratio_to_grpo": top_k_path,
              "median_ms": {n: round(v * 1e3, 3) for n, v in medians.items()},
              "goal": {n: f"ratio <= {v}" for n, v in GOAL.items()}}
    out = Path(__file__).parent / "results" / "objectives.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
