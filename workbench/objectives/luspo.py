"""LUSPO: Length-Unbiased Sequence Policy Optimization, GSPO with each sequence's loss scaled by its length.

    s_i = exp( (1/|y_i|)·Σ_t log(π_t/μ_t) ),  s_i,t = sg(s_i)·π_t/sg(π_t)      GSPO's sequence ratio, token form
    J_t = |y_i|·min(s_i,t·A_t, clip(s_i,t, 1−ε_lo, 1+ε_hi)·A_t),   g_t = |y_i|·s_i·A_t·1[not clipped]

GSPO averages a sequence's tokens (a 1/|y_i| in its gradient), which favours short correct and long wrong
answers and, with the sequence clip, collapses response length; LUSPO multiplies the sequence's loss back by
|y_i|. Under ``aggregation: sequence_mean`` (mean over a sequence's tokens, then over sequences) the loss is
TRL 1.16's ``luspo``: Σ_t over each sequence, mean over sequences. The clip and its parameters are the gspo
family's (GSPO paper §5.1 defaults); TRL's ``trl:luspo`` uses GRPOConfig's ε (0.2) unless objective_params set it.
Liu et al., Length-Unbiased Sequence Policy Optimization, arXiv 2602.05261.
"""

from __future__ import annotations

from .gspo import GSPOParams, gspo
from .registry import ObjectiveOutput, register_objective


@register_objective("luspo", params=GSPOParams, paper="arXiv 2602.05261")
def luspo(logp, behaviour_logp, advantages, mask, params: GSPOParams, generator=None) -> ObjectiveOutput:
    """GSPO's clipped sequence ratio with each sequence's loss scaled by its length |y_i|."""
    out = gspo(logp, behaviour_logp, advantages, mask, params)
    return ObjectiveOutput(out.per_token_loss * mask.sum(-1, keepdim=True), out.metrics)
