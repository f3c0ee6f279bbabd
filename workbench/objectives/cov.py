"""Clip-Cov and KL-Cov: restrain the few tokens whose covariance drives the entropy collapse.

    Cov_t = (A_t − mean A)·(log π_t − mean log π)      means over the valid tokens of the batch, detached
    Clip-Cov:  J_t = min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A), with the gradient of max(⌊ρN⌋, 1) tokens drawn
               at random among the eligible ones (ω_lo < Cov_t < ω_hi, valid, not already clipped) detached
    KL-Cov:    J_t = r·A − β·|log r|·1[t among the max(⌊ρN⌋, 1) valid tokens of largest Cov_t]

N is the number of valid tokens. As in the authors' code, Clip-Cov draws among tokens PPO did not
clip already (those have no gradient to take away). Detaching, rather than zeroing the loss as the
authors do, gives the same gradient and keeps the logged loss equal to PPO's. Metrics: ``frac/clipped``
is PPO's clip (comparable with ``grpo``), ``frac/masked`` the detached draw (like DPPO's mask, tokens
that lose their gradient to a rule).
Cui et al., The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models, arXiv 2505.22617.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator

from .common import log_ratio, masked_fraction, masked_mean, ppo_clip
from .registry import ObjectiveOutput, ObjectiveParams, register_objective


class ClipCovParams(ObjectiveParams):
    epsilon_low: float = Field(0.2, gt=0, description="lower clip ε_lo: r is clipped below 1−ε_lo")
    epsilon_high: float = Field(0.2, gt=0, description="upper clip ε_hi: r is clipped above 1+ε_hi")
    clip_ratio: float = Field(2e-4, gt=0, le=1, description="ρ: fraction of valid tokens whose gradient is detached")
    cov_low: float = Field(1.0, description="ω_lo: only tokens with Cov_t above it are eligible")
    cov_high: float = Field(5.0, description="ω_hi: only tokens with Cov_t below it are eligible")

    @model_validator(mode="after")
    def _band(self) -> ClipCovParams:
        if self.cov_low >= self.cov_high:
            raise ValueError(f"cov_low ({self.cov_low}) must be below cov_high ({self.cov_high})")
        return self


class KLCovParams(ObjectiveParams):
    ratio: float = Field(2e-3, gt=0, le=1, description="ρ: fraction of valid tokens, largest Cov_t first, penalised")
    beta: float = Field(1.0, gt=0, description="β: coefficient of the |log r| penalty")


def covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cov_t = (A_t − mean A)·(log π_t − mean log π) over the valid tokens, detached."""
    with torch.no_grad():
        return (advantages - masked_mean(advantages, mask)) * (logp - masked_mean(logp, mask))


def selected_count(rho: float, mask: torch.Tensor) -> int:
    """max(⌊ρN⌋, 1) for N valid tokens (0 when there are none)."""
    valid = int(mask.sum())
    return min(max(math.floor(rho * valid), 1), valid)


@register_objective("clip_cov", params=ClipCovParams, paper="arXiv 2505.22617", batch_level=True)
def clip_cov(logp, behaviour_logp, advantages, mask, params: ClipCovParams, generator=None) -> ObjectiveOutput:
    """PPO clip, plus the gradient of a random few high-covariance tokens detached."""
    ratio = log_ratio(logp, behaviour_logp).exp()
    objective, is_clipped = ppo_clip(ratio, advantages, params.epsilon_low, params.epsilon_high)
    cov = covariance(logp, advantages, mask)
    eligible = (mask > 0) & ~is_clipped & (cov > params.cov_low) & (cov < params.cov_high)
    candidates = eligible.flatten().nonzero().squeeze(1)
    order = torch.randperm(candidates.numel(), generator=generator).to(candidates.device)
    detached = torch.zeros_like(eligible)
    detached.view(-1)[candidates[order[: selected_count(params.clip_ratio, mask)]]] = True
    objective = torch.where(detached, objective.detach(), objective)
    metrics: dict[str, float] = {}
    metrics["frac/clipped"] = masked_fraction(is_clipped, mask)
    metrics["frac/masked"] = masked_fraction(detached, mask)
    metrics["frac/trust_region"] = masked_fraction(is_clipped | detached, mask)  # PPO's clip, then the selection
    return ObjectiveOutput(-objective * mask, metrics)


@register_objective("kl_cov", params=KLCovParams, paper="arXiv 2505.22617", batch_level=True)
def kl_cov(logp, behaviour_logp, advantages, mask, params: KLCovParams, generator=None) -> ObjectiveOutput:
    """Importance-weighted policy gradient, plus a |log r| penalty on the top-ρ tokens by covariance."""
    log_r = log_ratio(logp, behaviour_logp)
    cov = covariance(logp, advantages, mask).masked_fill(mask == 0, -torch.inf)
    penalised = torch.zeros_like(cov, dtype=torch.bool)
    penalised.view(-1)[cov.flatten().topk(selected_count(params.ratio, mask)).indices] = True
    objective = log_r.exp() * advantages - params.beta * log_r.abs() * penalised
    return ObjectiveOutput(-objective * mask, {"frac/trust_region": masked_fraction(penalised, mask)})
