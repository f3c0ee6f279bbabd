"""The loss as the trainer optimises it, and the per-token gradient weight read back from it: one definition each.

    L = Σ_t w_t · (ℓ_t · c_t + β·(exp(ref_t − log π_t) − (ref_t − log π_t) − 1)·m_t)

ℓ_t is the objective's per-token loss, c_t the correction's detached weight (1 without one), the β term TRL's k3
estimator of KL(π‖π_ref), m the mask and w the aggregation's per-token weights (Σ w·x is the aggregated loss,
already divided for gradient accumulation). Under a correction the objective is decoupled: it reads π against
π_old and c carries π_old/μ; without one it reads π against μ (bypass).

The gradient weight is g_t = −∂L/∂log π_t / w_t on the valid tokens (in the mask, with w_t > 0), 0 elsewhere: what
the histograms show, the batch keeper saves and replay compares. Pure tensors: the trainer, replay and the geometry
plot call these, so that all of them compute the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .common import proximal_logp
from .corrections import Correction, CorrectionOutput
from .registry import Objective


@dataclass
class Loss:
    """``loss`` = Σ w·ℓ (a scalar with its graph); ``metrics``: the objective's and the correction's;
    ``correction``: the correction's output (None without one), for its histogram."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    correction: CorrectionOutput | None = None


def kl_term(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """β·(exp(ref − log π) − (ref − log π) − 1) per valid token (TRL's k3 estimator of KL(π‖π_ref)), 0 elsewhere."""
    return beta * (torch.exp(ref_logp - logp) - (ref_logp - logp) - 1) * mask


def assemble_loss(objective: Objective, logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, loss_weights: torch.Tensor, *, old_logp: torch.Tensor | None = None,
                  correction: Correction | None = None, beta: float = 0.0,
                  ref_logp: torch.Tensor | None = None, generator: torch.Generator | None = None,
                  top_k: tuple[torch.Tensor, torch.Tensor] | None = None) -> Loss:
    """L for one micro-batch, ``loss_weights`` = w. ``old_logp`` None: π_old = π (:func:`proximal_logp`);
    ``ref_logp`` is needed when ``beta`` ≠ 0; ``top_k`` reaches the top-K objectives only."""
    correction = None if correction is None else correction(logp, old_logp, behaviour_logp, advantages, mask)
    reference = behaviour_logp if correction is None else proximal_logp(logp, old_logp)
    out = objective(logp, reference, advantages, mask, generator=generator, old_logp=old_logp,
                    top_k=top_k if objective.spec.uses_top_k else None)
    per_token = out.per_token_loss if correction is None else out.per_token_loss * correction.weight
    if beta != 0.0:
        per_token = per_token + kl_term(logp, ref_logp, mask, beta)
    metrics = out.metrics if correction is None else out.metrics | correction.metrics
    return Loss((per_token * loss_weights).sum(), metrics, correction)


def valid_tokens(mask: torch.Tensor, loss_weights: torch.Tensor) -> torch.Tensor:
    """The tokens that carry a gradient weight: in the mask and with w > 0."""
    return mask.bool() & (loss_weights > 0)


def token_gradient_weight(grad: torch.Tensor, loss_weights: torch.Tensor,
                          mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, valid) from ``grad`` = ∂L/∂log π: g = −grad / w on the valid tokens (:func:`valid_tokens`), 0 elsewhere."""
    valid = valid_tokens(mask, loss_weights)
    return torch.where(valid, -grad / torch.where(valid, loss_weights, 1.0), 0.0), valid
