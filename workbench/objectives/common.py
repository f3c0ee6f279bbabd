"""Steps the objectives share: the clamped log-ratio, PPO's clip, masked means and the diagnostics."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

# exp(±20) keeps r finite in fp16/bf16 while being far outside any trust region.
LOG_RATIO_CLAMP = 20.0


# The parameter grpo, dppo_tv and dppo_kl declare (decoupled or "recompute" trust regions, Stable-RL / MiniRL).
TrustRegionAgainst = Annotated[Literal["behaviour", "old"], Field(
    description="what the clip/mask is measured against: behaviour = μ; old = π_old, the policy at the start of "
                "the batch's updates (the importance weight stays π/μ)"
)]


def trust_region_reference(behaviour_logp: torch.Tensor, old_logp: torch.Tensor, against: str) -> torch.Tensor:
    """log μ or log π_old: the log-probability the trust region is measured from."""
    return old_logp if against == "old" else behaviour_logp


def log_ratio(logp: torch.Tensor, behaviour_logp: torch.Tensor) -> torch.Tensor:
    """log r = log π − log μ, clamped so that r = exp(log r) never overflows."""
    return torch.clamp(logp - behaviour_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over tokens where mask is 1 (0 when no token is valid)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def masked_fraction(flags: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of valid tokens where ``flags`` is true."""
    return float(masked_mean(flags.to(mask.dtype), mask))


def shift_metrics(logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """tv/mean, tv/max (|π−μ| of the sampled token) and ratio/mean over valid tokens, detached."""
    with torch.no_grad():
        logp32, mu32, m = logp.float(), behaviour_logp.float(), mask.float()
        tv = (logp32.exp() - mu32.exp()).abs()
        ratio = log_ratio(logp32, mu32).exp()
        return {
            "tv/mean": float(masked_mean(tv, m)),
            "tv/max": float((tv * m).max()) if tv.numel() else 0.0,  # tv ≥ 0: masked tokens count as 0
            "ratio/mean": float(masked_mean(ratio, m)),
        }


def ppo_clip(
    ratio: torch.Tensor, advantages: torch.Tensor, epsilon_low: float, epsilon_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's surrogate min(r·A, clip(r, 1−ε_lo, 1+ε_hi)·A) and where the clip takes the gradient away.

    The clip only bites in the direction the advantage pushes: r > 1+ε_hi for A > 0, r < 1−ε_lo for A < 0.
    """
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio.detach(), 1 - epsilon_low, 1 + epsilon_high) * advantages
    # The clipped term wins the min exactly where the clip is active (inside the range the two are equal),
    # and there it is constant in π: a where on the detached clip is the min, without the min's backward.
    is_clipped = clipped < unclipped.detach()
    return torch.where(is_clipped, clipped, unclipped), is_clipped


def negative_weight_fraction(grad_weight: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of valid tokens whose gradient weight opposes their advantage (g/A < 0: pulled back toward μ)."""
    return masked_fraction((grad_weight * advantages).detach() < 0, mask)


def sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over each sequence's valid tokens, shape (B, 1) (0 for a sequence with none)."""
    return (x * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)


def token_handle(logp: torch.Tensor) -> torch.Tensor:
    """π_t / sg(π_t): 1 in value, gradient ∇log π_t; lets a sequence-level ratio reach each token (GSPO-token)."""
    return (logp - logp.detach()).exp()
