"""Steps every objective shares: the clamped log-ratio, masked means and the shift diagnostics."""

from __future__ import annotations

import torch

# exp(±20) keeps r finite in fp16/bf16 while being far outside any trust region.
LOG_RATIO_CLAMP = 20.0


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
        valid = m > 0
        return {
            "tv/mean": float(masked_mean(tv, m)),
            "tv/max": float(tv[valid].max()) if valid.any() else 0.0,
            "ratio/mean": float(masked_mean(ratio, m)),
        }
