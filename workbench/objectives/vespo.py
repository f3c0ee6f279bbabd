"""VESPO: Variational Sequence-Level Soft Policy Optimization, a smooth gamma weight on the sequence ratio.

    w_i = exp( clamp( Σ_t clamp(log π_t − log μ_t, ±20), log 1e-8, 20 ) )      sequence ratio (sum, not mean)
    φ(w) = e^λ · w^k · e^(−λ·w)          φ(1) = 1; (k, λ) = (k+, λ+) for A ≥ 0, (k−, λ−) otherwise
    J_t = sg(φ(w_i))·A·log π_t,          g_t = φ(w_i)·A

No hard clip: φ rises from 0 as w^k below 1 and decays as e^(−λw) above, so a sequence far off-policy in either
direction keeps only a small weight; the advantage's sign picks the shape. Defaults as the paper and TRL 1.16
(k+ 2, λ+ 3, k− 3, λ− 2); the clamps reproduce TRL's ``get_gamma_weights`` (trl/trainer/grpo_trainer.py).
Under a correction TRL folds π_old/μ into w; the workbench multiplies the loss by the correction's weight instead.
Arxiv 2602.10693 (VESPO).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from .common import LOG_RATIO_CLAMP, log_ratio, masked_fraction
from .registry import ObjectiveOutput, ObjectiveParams, register_objective

LOG_W_MIN = math.log(1e-8)  # TRL's lower clamp of log w
# frac/trust_region: a token counts as touched once φ departs from 1 (the unregularised weight) by more than this.
PHI_TOLERANCE = 0.1


class VESPOParams(ObjectiveParams):
    k_pos: float = Field(2.0, ge=0, description="k+: power of w for A ≥ 0 (down-weights w < 1)")
    lambda_pos: float = Field(3.0, gt=0, description="λ+: decay in w for A ≥ 0 (down-weights w > 1)")
    k_neg: float = Field(3.0, ge=0, description="k−: power of w for A < 0")
    lambda_neg: float = Field(2.0, gt=0, description="λ−: decay in w for A < 0")


def gamma_weight(log_w: torch.Tensor, advantages: torch.Tensor, params: VESPOParams) -> torch.Tensor:
    """φ(w) = exp(λ + k·log w − λ·w), (k, λ) by the sign of A (A = 0 counts as positive, as in TRL)."""
    nonneg = advantages >= 0
    k = torch.where(nonneg, params.k_pos, params.k_neg)
    lam = torch.where(nonneg, params.lambda_pos, params.lambda_neg)
    return (lam + k * log_w - lam * log_w.exp()).exp().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


@register_objective("vespo", params=VESPOParams, paper="arXiv 2602.10693")
def vespo(logp, behaviour_logp, advantages, mask, params: VESPOParams, generator=None) -> ObjectiveOutput:
    """REINFORCE weighted by a gamma function φ of the sequence's importance ratio (detached)."""
    with torch.no_grad():
        log_r = log_ratio(logp, behaviour_logp)
        log_w = (log_r * mask).sum(-1, keepdim=True).clamp(LOG_W_MIN, LOG_RATIO_CLAMP)
        phi = gamma_weight(log_w, advantages, params)
    metrics: dict[str, float] = {}
    metrics["frac/trust_region"] = masked_fraction((phi - 1).abs().expand_as(logp) > PHI_TOLERANCE, mask)
    return ObjectiveOutput(-phi * advantages * logp * mask, metrics)
