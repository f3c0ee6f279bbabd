"""SAPO: Soft Adaptive Policy Optimization, a smooth gate in place of PPO's hard clip.

    J_t = 4/τ·σ(τ(r−1))·A,   τ = τ_pos for A > 0, τ_neg otherwise
    g_t = 4·σ(1−σ)·r·A,      σ = σ(τ(r−1))

The gate is 1 on-policy (r = 1) and decays smoothly as r leaves 1 on either side, faster for the
larger τ: the negative-advantage temperature is set slightly higher because pushing a token down
spreads probability over the whole vocabulary. Defaults as the paper and TRL 1.16 (τ_pos 1.0, τ_neg 1.05).
Gao et al., Soft Adaptive Policy Optimization, arXiv 2511.20347.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import TRUST_REGION_TOLERANCE, log_ratio, masked_fraction
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class SAPOParams(ObjectiveParams):
    temperature_pos: float = Field(1.0, gt=0, description="τ_pos: gate temperature for tokens with A > 0")
    temperature_neg: float = Field(1.05, gt=0, description="τ_neg: gate temperature for tokens with A ≤ 0")


@register_objective("sapo", params=SAPOParams, paper="arXiv 2511.20347")
def sapo(logp, behaviour_logp, advantages, mask, params: SAPOParams, generator=None) -> ObjectiveOutput:
    """Soft sigmoid gate on the ratio, 4/τ·σ(τ(r−1))·A, with separate temperatures by the advantage's sign."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    tau = torch.where(advantages > 0, params.temperature_pos, params.temperature_neg)
    gate = torch.sigmoid(tau * (ratio - 1))
    objective = gate * 4 / tau * advantages
    # g = 4σ(1−σ)·r·A: the gate changed the gradient where 4σ(1−σ) departs from 1 by more than 10%.
    touched = (4 * gate.detach() * (1 - gate.detach()) - 1).abs() > TRUST_REGION_TOLERANCE
    return ObjectiveOutput(-objective * mask, {"frac/trust_region": masked_fraction(touched, mask)})
