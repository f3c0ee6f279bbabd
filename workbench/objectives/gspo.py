"""GSPO: Group Sequence Policy Optimization, PPO's clip on a sequence-level ratio (token form).

    s_i = exp( (1/|y_i|)·Σ_t log(π_t/μ_t) )            geometric mean of the ratios of sequence i
    s_i,t = sg(s_i)·π_t/sg(π_t)                          GSPO-token: the value of s_i, the gradient of log π_t
    J_t = min(s_i,t·A_t, clip(s_i,t, 1−ε_lo, 1+ε_hi)·A_t),   g_t = s_i·A_t·1[not clipped]

With one advantage per sequence, the sequence mean of J_t is the paper's sequence objective, value and
gradient (so TRL's importance_sampling_level="sequence" under sequence_mean aggregation). The whole
sequence is clipped or not, by its mean log-ratio; the paper's ranges are far narrower than PPO's.
Zheng et al., Group Sequence Policy Optimization, arXiv 2507.18071 (ε_lo 3e-4, ε_hi 4e-4, §5.1).
"""

from __future__ import annotations

import torch
from pydantic import Field

from .common import log_ratio, masked_fraction, ppo_clip, sequence_mean, token_handle
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class GSPOParams(ObjectiveParams):
    epsilon_low: float = Field(3e-4, gt=0, description="lower clip ε_lo on the sequence ratio s (paper: 3e-4)")
    epsilon_high: float = Field(4e-4, gt=0, description="upper clip ε_hi on the sequence ratio s (paper: 4e-4)")


@register_objective("gspo", params=GSPOParams, paper="arXiv 2507.18071")
def gspo(logp, behaviour_logp, advantages, mask, params: GSPOParams, generator=None) -> ObjectiveOutput:
    """PPO's clip on the sequence's geometric-mean ratio s_i, each token carrying s_i·∇log π_t."""
    with torch.no_grad():
        seq_ratio = sequence_mean(log_ratio(logp, behaviour_logp), mask).exp()
    objective, is_clipped = ppo_clip(seq_ratio * token_handle(logp), advantages, params.epsilon_low,
                                     params.epsilon_high)
    metrics: dict[str, float] = {}
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    metrics["frac/trust_region"] = metrics["frac/clipped"]
    return ObjectiveOutput(-objective * mask, metrics)
