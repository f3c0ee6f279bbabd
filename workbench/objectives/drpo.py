"""DRPO: Divergence Regularized Policy Optimization.

    J_t = r·A − w(A)/(2δ)·μ·(r−1)²          (μ(r−1)² = (π−μ)²/μ)
    g_t = r·A·(1 − sign(A(r−1))·|π−μ|/δ)    for w(A) = |A|

The smooth counterpart of DPPO's mask: the weight falls linearly with the absolute probability
shift, is exactly 0 at |π−μ| = δ in the harmful direction and corrective (negative) beyond.
Yao et al., Rethinking the Divergence Regularization in LLM RL, arXiv 2606.09821.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import log_ratio, masked_fraction, shift_metrics
from .registry import ObjectiveOutput, ObjectiveParams, register_objective
from .weighting import ADVANTAGE_WEIGHT_HELP, advantage_weight


class DRPOParams(ObjectiveParams):
    delta: float = Field(0.15, gt=0, description="trust-region size δ on |π−μ| (authors' code: 12.5)")
    advantage_weight: Literal["abs", "const", "square"] = Field("abs", description=ADVANTAGE_WEIGHT_HELP)


@register_objective("drpo", params=DRPOParams, paper="arXiv 2606.09821")
def drpo(logp, behaviour_logp, advantages, mask, params: DRPOParams, generator=None) -> ObjectiveOutput:
    """Smooth advantage-weighted quadratic penalty on the probability shift π−μ."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    mu = behaviour_logp.exp()
    weight = advantage_weight(advantages, params.advantage_weight)
    objective = ratio * advantages - weight / (2 * params.delta) * mu * (ratio - 1) ** 2
    # g_t = r·A − w·π(π−μ)/δ: negative when the penalty outweighs the advantage term.
    grad_weight = ratio * advantages - weight * logp.exp() * (logp.exp() - mu) / params.delta
    metrics = shift_metrics(logp, behaviour_logp, mask)
    # "negative" means g/A < 0: the update is pushed back toward μ.
    metrics["frac/negative_weight"] = masked_fraction((grad_weight * advantages).detach() < 0, mask)
    return ObjectiveOutput(-objective * mask, metrics)
