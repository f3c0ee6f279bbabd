"""GRPO / PPO ratio clip (DAPO's clip-higher through ε_hi).

    J_t = min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A),   r = π/μ
    g_t = r·A·1[not clipped],   clipped: A > 0 and r > 1+ε_hi, or A < 0 and r < 1−ε_lo

Measured against π_old (``trust_region_against: old``; decoupled PPO): J_t = sg(π_old/μ)·min(r'·A, clip(r')·A)
with r' = π/π_old, so the weight is still π/μ while the clip (and the dual clip) reads r'.
Dual clip (optional, c > 1): for A < 0, J_t = max(min(r·A, clip(r)·A), c·A), so a token with r > c and
A < 0 loses its gradient too (verl's ``clip_ratio_c``, default 3 there; off here, as in TRL).
Shao et al., DeepSeekMath, arXiv 2402.03300; DAPO (ε_hi = 0.28), arXiv 2503.14476;
dual clip: Ye et al., Mastering Complex Control in MOBA Games with Deep RL, arXiv 1912.09729.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import TrustRegionAgainst, log_ratio, masked_fraction, ppo_clip, trust_region_reference
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class GRPOParams(ObjectiveParams):
    epsilon_low: float = Field(0.2, gt=0, description="lower clip ε_lo: r is clipped below 1−ε_lo")
    epsilon_high: float = Field(0.2, gt=0, description="upper clip ε_hi: r is clipped above 1+ε_hi (0.28 = DAPO)")
    clip_ratio_c: float | None = Field(None, gt=1, description="dual clip c: with A < 0, r > c loses its gradient "
                                                               "(verl: 3); None = off, as in TRL")
    trust_region_against: TrustRegionAgainst = "behaviour"


@register_objective("grpo", params=GRPOParams, paper="arXiv 2402.03300", uses_old_logp=True)
def grpo(logp, behaviour_logp, advantages, mask, params: GRPOParams, generator=None, old_logp=None) -> ObjectiveOutput:
    """PPO's clipped surrogate, min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A)."""
    reference = trust_region_reference(behaviour_logp, old_logp, params.trust_region_against)
    ratio = log_ratio(logp, reference).exp()
    objective, is_clipped = ppo_clip(ratio, advantages, params.epsilon_low, params.epsilon_high)
    metrics: dict[str, float] = {}
    if params.clip_ratio_c is not None:
        # −J is capped at −c·A for A < 0: the unclipped branch r·A wins the min there, so r > c is enough.
        dual = (advantages < 0) & (ratio.detach() > params.clip_ratio_c)
        objective = torch.where(dual, params.clip_ratio_c * advantages, objective)
        is_clipped = is_clipped | dual
        metrics["frac/dual_clipped"] = masked_fraction(dual, mask)
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    metrics["frac/trust_region"] = metrics["frac/clipped"]  # the clip (and dual clip) took the gradient away
    if reference is not behaviour_logp:  # the rest of the importance weight, π_old/μ, as a constant
        objective = objective * log_ratio(reference, behaviour_logp).exp()
    return ObjectiveOutput(-objective * mask, metrics)
