"""DPPO: Divergence Proximal Policy Optimization, binary TV and binary KL trust regions.

    J_t = sg(min(r, C))·M_t·A·log π,      g_t = min(r, C)·A·M_t
    M_t = 0  iff  the token moved the way its advantage pushes and past the trust region that applies:
                  A > 0, π > μ and D(μ, π) > δ_high,   or   A < 0, π < μ and D(μ, π) > δ_low
    D_TV = |π − μ|,    D_KL = μ·log(μ/π) + (1−μ)·log((1−μ)/(1−π))   (sampled token vs the rest)

The mask replaces PPO's ratio clip with a divergence on the probabilities themselves, and it is
directional: a token moving back toward μ keeps its gradient (and A = 0 never counts as masked: it
has no gradient to lose). δ_low and δ_high default to δ (the references' asymmetric trust region).
C truncates the importance weight. With ``trust_region_against: old`` (Stable-RL's "recompute") D and the
direction are measured between π_old and π, while the importance weight stays min(π/μ, C).
Qi et al., Rethinking the Trust Region in LLM Reinforcement Learning, arXiv 2602.04879.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import TrustRegionAgainst, log_ratio, masked_fraction, trust_region_reference
from .registry import ObjectiveOutput, ObjectiveParams, register_objective

CLIP_C_HELP = "truncation C of the stop-gradient importance weight min(r, C)"
DELTA_LOW_HELP = "δ_low for tokens pushed down (A < 0, π < μ); None = δ"
DELTA_HIGH_HELP = "δ_high for tokens pushed up (A > 0, π > μ); None = δ"


class _DPPOParams(ObjectiveParams):
    delta: float = Field(gt=0, description="trust region δ")  # each divergence sets its default and help
    delta_low: float | None = Field(None, gt=0, description=DELTA_LOW_HELP)
    delta_high: float | None = Field(None, gt=0, description=DELTA_HIGH_HELP)
    clip_c: float = Field(20.0, gt=0, description=CLIP_C_HELP)

    def bounds(self, advantages: torch.Tensor) -> torch.Tensor:
        """The δ that applies to each token: δ_high where A > 0, δ_low elsewhere (A = 0 is never masked)."""
        low = self.delta if self.delta_low is None else self.delta_low
        high = self.delta if self.delta_high is None else self.delta_high
        return torch.where(advantages > 0, high, low)


class DPPOTVParams(_DPPOParams):
    delta: float = Field(0.15, gt=0, description="trust region δ on the total variation |π−μ|")
    trust_region_against: TrustRegionAgainst = "behaviour"


class DPPOKLParams(_DPPOParams):
    delta: float = Field(0.05, gt=0, description="trust region δ on the binary KL(μ‖π)")
    trust_region_against: TrustRegionAgainst = "behaviour"


def binary_kl(logp: torch.Tensor, behaviour_logp: torch.Tensor) -> torch.Tensor:
    """KL(μ‖π) between Bernoulli(μ) and Bernoulli(π): the sampled token against all the others."""
    # −expm1(log p) is 1−p without cancellation near p = 1; π = 1 > μ gives +inf (outside any trust region).
    rest_mu = -torch.expm1(behaviour_logp)
    rest = rest_mu * (torch.log(rest_mu) - torch.log(-torch.expm1(logp)))
    # μ = 1 has no rest: 0·(−inf) is NaN there and 0 is its limit.
    return behaviour_logp.exp() * (behaviour_logp - logp) + rest.nan_to_num_(nan=0.0, posinf=torch.inf)


def _dppo(logp, behaviour_logp, reference, advantages, mask, outside: torch.Tensor, clip_c: float) -> ObjectiveOutput:
    """The masked, truncated-IS policy gradient shared by both divergences; ``outside`` is D(reference, π) > δ."""
    with torch.no_grad():
        log_r = log_ratio(logp, behaviour_logp)
        # Moved the way the advantage pushes: A and π − reference share a sign (0 for either means not pushed).
        dropped = outside & (advantages * (logp - reference) > 0)
        # The whole gradient weight g = min(r, C)·M·A is a constant: the loss is linear in log π.
        grad_weight = log_r.exp_().clamp_(max=clip_c).masked_fill_(dropped, 0.0) * advantages * mask
    metrics: dict[str, float] = {}
    metrics["frac/masked"] = masked_fraction(dropped, mask)
    metrics["frac/trust_region"] = metrics["frac/masked"]
    return ObjectiveOutput(-grad_weight * logp, metrics)


@register_objective("dppo_tv", params=DPPOTVParams, paper="arXiv 2602.04879", uses_old_logp=True)
def dppo_tv(logp, behaviour_logp, advantages, mask, params: DPPOTVParams, generator=None,
            old_logp=None) -> ObjectiveOutput:
    """Truncated-IS policy gradient with a directional mask on |π−μ| > δ (DPPO-Binary-TV)."""
    reference = trust_region_reference(behaviour_logp, old_logp, params.trust_region_against)
    with torch.no_grad():
        outside = (logp.exp() - reference.exp()).abs() > params.bounds(advantages)
    return _dppo(logp, behaviour_logp, reference, advantages, mask, outside, params.clip_c)


@register_objective("dppo_kl", params=DPPOKLParams, paper="arXiv 2602.04879", uses_old_logp=True)
def dppo_kl(logp, behaviour_logp, advantages, mask, params: DPPOKLParams, generator=None,
            old_logp=None) -> ObjectiveOutput:
    """Truncated-IS policy gradient with a directional mask on the binary KL(μ‖π) > δ (DPPO-Binary-KL)."""
    reference = trust_region_reference(behaviour_logp, old_logp, params.trust_region_against)
    with torch.no_grad():
        outside = binary_kl(logp, reference) > params.bounds(advantages)
    return _dppo(logp, behaviour_logp, reference, advantages, mask, outside, params.clip_c)
