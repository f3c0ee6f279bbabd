"""Advantage weighting of a quadratic regulariser (DRPO, SPO): an ablation axis."""

from __future__ import annotations

import torch

ADVANTAGE_WEIGHT_HELP = (
    "weight of the regulariser: abs = |A| (paper), const = 1 (the boundary moves with |A|), square = A²"
)


def advantage_weight(advantages: torch.Tensor, mode: str) -> torch.Tensor:
    """|A|, 1 or A², detached: the weight scales the penalty, it is not optimised."""
    a = advantages.detach()
    if mode == "abs":
        return a.abs()
    if mode == "square":
        return a * a
    if mode == "const":
        return torch.ones_like(a)
    raise ValueError(f"advantage_weight must be one of abs, const, square; got {mode!r}")
