"""GPG: Group Policy Gradient, plain REINFORCE on group-relative advantages.

    J_t = A·log π,   g_t = A

No importance weight and no trust region: the paper drops PPO's surrogate altogether and keeps only
the group-relative advantage (its corrections act on the advantage, not on the loss). Off-policy it
ignores μ, which is what the ablation can show against the trust-region families.
Chu et al., GPG: A Simple and Strong Reinforcement Learning Baseline for Model Reasoning, arXiv 2504.02546.
"""

from __future__ import annotations

from .registry import ObjectiveOutput, register_objective


@register_objective("gpg", paper="arXiv 2504.02546")
def gpg(logp, behaviour_logp, advantages, mask, params, generator=None) -> ObjectiveOutput:
    """REINFORCE A·log π, with no importance weight and no trust region."""
    return ObjectiveOutput(-advantages * logp * mask, {"frac/trust_region": 0.0})  # no trust region
