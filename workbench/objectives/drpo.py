"""DRPO: Divergence Regularized Policy Optimization.

    J_t = r·A − w(A)/(2δ)·μ·(r−1)²           (μ(r−1)² = (π−μ)²/μ)
    g_t = r·(A − w(A)·(π−μ)/δ)
        = r·A·(1 − sign(A(r−1))·|π−μ|/δ)     for w(A) = |A|

The smooth counterpart of DPPO's mask: the weight falls linearly with the absolute probability
shift, is exactly 0 at |π−μ| = δ in the harmful direction and corrective (negative) beyond; it
stays bounded for rare tokens, where SPO's |r−1|/ε does not.
Yao et al., Rethinking the Divergence Regularization in LLM RL, arXiv 2606.09821.
"""

from __future__ import annotations

from pydantic import Field

from .common import log_ratio
from .registry import ObjectiveOutput, ObjectiveParams, register_objective
from .weighting import AdvantageWeight, regularised_ratio


class DRPOParams(ObjectiveParams):
    delta: float = Field(0.15, gt=0, description="trust-region size δ on |π−μ| (authors' code: 12.5)")
    advantage_weight: AdvantageWeight = "abs"


@register_objective("drpo", params=DRPOParams, paper="arXiv 2606.09821")
def drpo(logp, behaviour_logp, advantages, mask, params: DRPOParams, generator=None) -> ObjectiveOutput:
    """Smooth advantage-weighted quadratic penalty on the probability shift π−μ."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    # μ(r−1)² = (π−μ)·(r−1), with π−μ = μ(r−1) differentiable through r.
    return regularised_ratio(logp, behaviour_logp, advantages, mask, ratio, behaviour_logp.exp() * (ratio - 1),
                             params.delta, params.advantage_weight)
