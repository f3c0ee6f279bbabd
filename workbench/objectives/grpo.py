"""GRPO / PPO ratio clip (DAPO's clip-higher through ε_hi).

    J_t = min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A),   r = π/μ
    g_t = r·A·1[not clipped],   clipped: A > 0 and r > 1+ε_hi, or A < 0 and r < 1−ε_lo

Shao et al., DeepSeekMath, arXiv 2402.03300; DAPO (ε_hi = 0.28), arXiv 2503.14476.
"""

from __future__ import annotations

from pydantic import Field

from .common import log_ratio, masked_fraction, ppo_clip, shift_metrics
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class GRPOParams(ObjectiveParams):
    epsilon_low: float = Field(0.2, gt=0, description="lower clip ε_lo: r is clipped below 1−ε_lo")
    epsilon_high: float = Field(0.2, gt=0, description="upper clip ε_hi: r is clipped above 1+ε_hi (0.28 = DAPO)")


@register_objective("grpo", params=GRPOParams, paper="arXiv 2402.03300")
def grpo(logp, behaviour_logp, advantages, mask, params: GRPOParams, generator=None) -> ObjectiveOutput:
    """PPO's clipped surrogate, min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A)."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    objective, is_clipped = ppo_clip(ratio, advantages, params.epsilon_low, params.epsilon_high)
    metrics = shift_metrics(logp, behaviour_logp, mask)
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    return ObjectiveOutput(-objective * mask, metrics)
