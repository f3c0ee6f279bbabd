"""GMPO: Geometric-Mean Policy Optimization, the geometric mean of clipped token ratios (token form).

    x_t = sgn(A_t)·min(sgn(A_t)·log r_t, sgn(A_t)·clip(log r_t, −ε_lo, ε_hi))   log-space clip, PPO's direction
    ρ_i = exp( (1/|y_i|)·Σ_t x_t )                                              geometric mean of the clipped ratios
    J_t = A_t·sg(ρ_i)·π_t/sg(π_t) on tokens not clipped, A_t·ρ_i (constant) on clipped ones
    g_t = ρ_i·A_t·1[not clipped]

With one advantage per sequence the sequence mean of J_t has the value A_i·ρ_i and the gradient of the
paper's objective; a token with an outlying ratio moves ρ_i by its |y_i|-th root only, and its own gradient
stops once past the clip. The paper widens PPO's range to (e^−0.4, e^0.4).
Zhao et al., Geometric-Mean Policy Optimization, arXiv 2507.20673.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import log_ratio, masked_fraction, sequence_mean, token_handle
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class GMPOParams(ObjectiveParams):
    epsilon_low: float = Field(0.4, gt=0, description="log-space clip: log r is clipped below −ε_lo (paper: 0.4)")
    epsilon_high: float = Field(0.4, gt=0, description="log-space clip: log r is clipped above ε_hi (paper: 0.4)")


@register_objective("gmpo", params=GMPOParams, paper="arXiv 2507.20673")
def gmpo(logp, behaviour_logp, advantages, mask, params: GMPOParams, generator=None) -> ObjectiveOutput:
    """Geometric mean of the token ratios, each clipped in log space where its advantage pushes."""
    with torch.no_grad():
        log_r = log_ratio(logp, behaviour_logp)
        sign = advantages.sign()
        clipped_log_r = log_r.clamp(-params.epsilon_low, params.epsilon_high)
        is_clipped = sign * clipped_log_r < sign * log_r
        seq_ratio = sequence_mean(torch.where(is_clipped, clipped_log_r, log_r) * sign.abs(), mask).exp()
    handle = torch.where(is_clipped, torch.ones_like(logp), token_handle(logp))
    metrics: dict[str, float] = {}
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    metrics["frac/trust_region"] = metrics["frac/clipped"]
    return ObjectiveOutput(-advantages * seq_ratio * handle * mask, metrics)
