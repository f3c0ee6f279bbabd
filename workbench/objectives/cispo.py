"""CISPO: Clipped IS-weight Policy Optimization (MiniMax-M1).

    J_t = sg(r̂_t)·A·log π,   r̂_t = clip(r, 1−ε_lo, 1+ε_hi),   g_t = r̂_t·A

The importance weight is clipped and detached instead of the update: every token keeps a gradient
(PPO's clip drops it), only its weight is bounded. MiniMax sets no lower bound (ε_lo = None here) and
tunes ε_hi; 1+ε_hi = 5 is ScaleRL's ε_max (arXiv 2510.13786), the value TRL recommends.
MiniMax, MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention, arXiv 2506.13585.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import log_ratio, masked_fraction
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class CISPOParams(ObjectiveParams):
    epsilon_low: float | None = Field(None, gt=0, description="lower bound 1−ε_lo of the weight; None = no bound "
                                                              "(MiniMax-M1)")
    epsilon_high: float = Field(4.0, gt=0, description="upper bound 1+ε_hi of the weight (4 → ScaleRL's ε_max = 5)")


@register_objective("cispo", params=CISPOParams, paper="arXiv 2506.13585")
def cispo(logp, behaviour_logp, advantages, mask, params: CISPOParams, generator=None) -> ObjectiveOutput:
    """REINFORCE with a clipped, detached importance weight: no token loses its gradient."""
    with torch.no_grad():
        ratio = log_ratio(logp, behaviour_logp).exp()
        low = None if params.epsilon_low is None else 1 - params.epsilon_low
        weight = ratio.clamp(min=low, max=1 + params.epsilon_high)
    metrics: dict[str, float] = {}
    metrics["frac/clipped"] = masked_fraction(weight != ratio, mask)
    metrics["frac/trust_region"] = metrics["frac/clipped"]  # the weight was clipped (the gradient is kept)
    return ObjectiveOutput(-weight * advantages * logp * mask, metrics)
