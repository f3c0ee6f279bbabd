"""SPO: Simple Policy Optimization.

    J_t = r·A − w(A)/(2ε)·(r−1)²
    g_t = r·(A − w(A)·(r−1)/ε)
        = r·A·(1 − sign(A(r−1))·|r−1|/ε)     for w(A) = |A|

A quadratic penalty on the ratio in place of PPO's clip: the weight reaches 0 at |r−1| = ε in the
harmful direction and turns corrective beyond. Measured on r, it grows without bound for rare tokens
(small μ), where DRPO's penalty on |π−μ| does not.
Xie et al., Simple Policy Optimization, arXiv 2401.16025.
"""

from __future__ import annotations

from pydantic import Field

from .common import log_ratio
from .registry import ObjectiveOutput, ObjectiveParams, register_objective
from .weighting import AdvantageWeight, regularised_ratio


class SPOParams(ObjectiveParams):
    epsilon: float = Field(0.2, gt=0, description="trust-region size ε on |r−1|")
    advantage_weight: AdvantageWeight = "abs"


@register_objective("spo", params=SPOParams, paper="arXiv 2401.16025")
def spo(logp, behaviour_logp, advantages, mask, params: SPOParams, generator=None) -> ObjectiveOutput:
    """Advantage-weighted quadratic penalty on the ratio, r·A − |A|/(2ε)·(r−1)²."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    return regularised_ratio(logp, behaviour_logp, advantages, mask, ratio, ratio - 1, params.epsilon,
                             params.advantage_weight)
