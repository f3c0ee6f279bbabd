"""Steps the objectives share: the clamped log-ratio, PPO's clip, masked means and the diagnostics."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

# exp(±20) keeps r finite in fp16/bf16 while being far outside any trust region.
LOG_RATIO_CLAMP = 20.0

# frac/trust_region of a smooth trust region (DRPO, SPO, SAPO's gate): a token counts as touched once its gradient
# weight differs from the unregularised r·A by more than this fraction (an opposite sign always does).
TRUST_REGION_TOLERANCE = 0.1


# The parameter grpo, dppo_tv and dppo_kl declare (decoupled or "recompute" trust regions, Stable-RL / MiniRL).
TrustRegionAgainst = Annotated[Literal["behaviour", "old"], Field(
    description="what the clip/mask is measured against: behaviour = μ; old = π_old, the policy at the start of "
                "the batch's updates (the importance weight stays π/μ)"
)]


def trust_region_reference(behaviour_logp: torch.Tensor, old_logp: torch.Tensor, against: str) -> torch.Tensor:
    """log μ or log π_old: the log-probability the trust region is measured from."""
    return old_logp if against == "old" else behaviour_logp


def proximal_logp(logp: torch.Tensor, old_logp: torch.Tensor | None) -> torch.Tensor:
    """log π_old: TRL's old log-probs when a batch serves several updates; without them (a batch's only update)
    π_old = π, this forward detached. Decided here alone."""
    return logp.detach() if old_logp is None else old_logp


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


def mismatch_metrics(old_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """mismatch/*: how far the sampler (μ) is from π_old (the training weights when the batch's updates begin).

    On valid tokens, with ρ = π_old/μ (log ρ clamped at ±20 as everywhere): ``kl`` = mean(log μ − log π_old) (k1
    estimator of KL(μ‖π_old)), ``k3_kl`` = mean(ρ − log ρ − 1), ``chi2_token`` = mean(ρ²) − 1, ``chi2_seq`` =
    mean over sequences of (Π_t ρ_t)² − 1, ``log_ppl_abs_diff`` = mean over sequences of |mean_t log μ − mean_t
    log π_old|, ``ppl_ratio`` = mean over sequences of exp(mean_t log μ − mean_t log π_old) (π_old's perplexity
    over μ's), ``is_ess`` = (Σρ)² / (N·Σρ²), the normalised effective sample size of the token ratios (1 when
    μ = π_old). verl's ``rollout_corr/*`` of the same names compute the same quantities (its ESS on truncated
    weights); sequences with no valid token are left out of the sequence means.
    """
    with torch.no_grad():
        m = mask.float()
        log_rho = log_ratio(old_logp.float(), behaviour_logp.float()) * m
        rho = log_rho.exp()
        valid_seq = m.sum(-1) > 0
        if not valid_seq.any():  # every name still present: ranks combine the same keys
            return {"mismatch/kl": 0.0, "mismatch/k3_kl": 0.0, "mismatch/chi2_token": 0.0, "mismatch/chi2_seq": 0.0,
                    "mismatch/log_ppl_abs_diff": 0.0, "mismatch/ppl_ratio": 1.0, "mismatch/is_ess": 1.0}
        seq_log_rho = log_rho.sum(-1).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)[valid_seq]
        log_ppl_diff = (-log_rho.sum(-1) / m.sum(-1).clamp(min=1.0))[valid_seq]  # mean log μ − mean log π_old
        rho_sum, rho_sq_sum = (rho * m).sum(), (rho.square() * m).sum()
        return {
            "mismatch/kl": float(masked_mean(-log_rho, m)),
            "mismatch/k3_kl": float(masked_mean(rho - log_rho - 1, m)),
            "mismatch/chi2_token": float(masked_mean(rho.square(), m) - 1),
            "mismatch/chi2_seq": float((2 * seq_log_rho).exp().mean() - 1),
            "mismatch/log_ppl_abs_diff": float(log_ppl_diff.abs().mean()),
            "mismatch/ppl_ratio": float(log_ppl_diff.exp().mean()),
            "mismatch/is_ess": float(rho_sum.square() / (m.sum() * rho_sq_sum)),
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
