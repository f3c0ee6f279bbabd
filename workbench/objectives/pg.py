"""Unregularised importance-sampled policy gradient: the baseline every trust region is measured against.

    J_t = r·A,   g_t = r·A,   r = π/μ

Off-policy REINFORCE with per-token importance weights (PG-IS in arXiv 2602.04879's comparison).
"""

from __future__ import annotations

from .common import log_ratio
from .registry import ObjectiveOutput, register_objective


@register_objective("pg", paper="arXiv 2602.04879 (PG-IS baseline)")
def pg(logp, behaviour_logp, advantages, mask, params, generator=None) -> ObjectiveOutput:
    """Importance-weighted policy gradient r·A, with no trust region at all."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    return ObjectiveOutput(-ratio * advantages * mask, {"frac/trust_region": 0.0})  # no trust region
