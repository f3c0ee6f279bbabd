"""The advantage-weighted quadratic regulariser of DRPO and SPO, and its weighting (an ablation axis)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from .common import TRUST_REGION_TOLERANCE, masked_fraction, negative_weight_fraction
from .registry import ObjectiveOutput

# The parameter type DRPO and SPO declare: `advantage_weight: AdvantageWeight = "abs"`.
AdvantageWeight = Annotated[Literal["abs", "const", "square"], Field(
    description="weight of the regulariser: abs = |A| (paper), const = 1 (the boundary moves with |A|), square = A²"
)]


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


def regularised_ratio(
    logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
    ratio: torch.Tensor, shift: torch.Tensor, size: float, mode: str,
) -> ObjectiveOutput:
    """J = r·A − w(A)/(2·size)·shift·(r−1), with the shift metrics and ``frac/negative_weight`` (g opposes A).

    ``shift`` is proportional to r−1 (SPO: r−1; DRPO: π−μ = μ(r−1)), so the penalty is quadratic in r and
    g = r·(A − w(A)·shift/size): 0 where the shift reaches ``size`` in the direction A pushes.
    """
    weight = advantage_weight(advantages, mode)
    objective = ratio * advantages - weight / (2 * size) * shift * (ratio - 1)
    metrics: dict[str, float] = {}
    # g/r has the sign of g.
    metrics["frac/negative_weight"] = negative_weight_fraction(advantages - weight * shift.detach() / size,
                                                               advantages, mask)
    # The trust region changed the gradient where g departs from r·A by more than 10% (opposite signs included):
    # |g − r·A| = r·|w(A)·shift/size| against 0.1·r·|A|.
    metrics["frac/trust_region"] = masked_fraction(
        (weight * shift.detach() / size).abs() > TRUST_REGION_TOLERANCE * advantages.detach().abs(), mask)
    return ObjectiveOutput(-objective * mask, metrics)
