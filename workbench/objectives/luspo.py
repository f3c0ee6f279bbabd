"""LUSPO: Length-Unbiased Sequence Policy Optimization, GSPO with each sequence's loss scaled by its length.

    s_i = exp( (1/|y_i|)·Σ_t log(π_t/μ_t) ),  s_i,t = sg(s_i)·π_t/sg(π_t)      GSPO's sequence ratio, token form
    J_t = |y_i|·min(s_i,t·A_t, clip(s_i,t, 1−ε_lo, 1+ε_hi)·A_t),   g_t = |y_i|·s_i·A_t·1[not clipped]

GSPO averages a sequence's tokens (a 1/|y_i| in its gradient), which favours short correct and long wrong
answers and, with the sequence clip, collapses response length; LUSPO multiplies the sequence's loss back by
|y_i|. Under ``aggregation: sequence_mean`` (mean over a sequence's tokens, then over sequences) the loss is
TRL 1.16's ``luspo``: Σ_t over each sequence, mean over sequences. The clip is GSPO's; the defaults here are the
gspo family's (GSPO paper §5.1), TRL's ``trl:luspo`` uses GRPOConfig's ε (0.2) unless objective_params set it.
Liu et al., Length-Unbiased Sequence Policy Optimization, arXiv 2602.05261.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import log_ratio, masked_fraction, ppo_clip, sequence_mean, token_handle
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class LUSPOParams(ObjectiveParams):
    epsilon_low: float = Field(3e-4, gt=0, description="lower clip ε_lo on the sequence ratio s (GSPO: 3e-4)")
    epsilon_high: float = Field(4e-4, gt=0, description="upper clip ε_hi on the sequence ratio s (GSPO: 4e-4)")


@register_objective("luspo", params=LUSPOParams, paper="arXiv 2602.05261")
def luspo(logp, behaviour_logp, advantages, mask, params: LUSPOParams, generator=None) -> ObjectiveOutput:
    """GSPO's clipped sequence ratio with each sequence's loss scaled by its length |y_i|."""
    with torch.no_grad():
        seq_ratio = sequence_mean(log_ratio(logp, behaviour_logp), mask).exp()
        length = mask.sum(-1, keepdim=True)
    objective, is_clipped = ppo_clip(seq_ratio * token_handle(logp), advantages, params.epsilon_low,
                                     params.epsilon_high)
    metrics: dict[str, float] = {}
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    metrics["frac/trust_region"] = metrics["frac/clipped"]
    return ObjectiveOutput(-objective * length * mask, metrics)
