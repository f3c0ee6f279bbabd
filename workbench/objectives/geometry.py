"""Gradient geometry: the weight g = −∂ℓ/∂log π an objective puts on a token, read from autograd.

Autograd (read by :func:`objectives.loss.token_gradient_weight`, as the trainer reads it) rather than per-family
formulas, so that the plot, the report and the tests see the same thing for every objective, plugins included
(the closed forms of DESIGN.md live in the tests, which check them against this).
"""

from __future__ import annotations

import torch

from .loss import token_gradient_weight
from .registry import Objective


def gradient_weight(
    objective: Objective,
    pi: torch.Tensor | float,
    mu: torch.Tensor | float,
    advantages: torch.Tensor | float,
    *,
    isolated: bool | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """g_t for tokens of policy probability π, behaviour probability μ and advantage A (broadcast together).

    The tokens form one batch of one-token completions, all valid, in float64. A batch-level objective
    (Clip-Cov, KL-Cov select tokens by covariance) depends on the company a token keeps, so by default
    (``isolated=None``: the spec's ``batch_level``) each of its tokens is evaluated as a batch of its own.
    """
    if isolated is None:
        isolated = objective.spec.batch_level
    pi, mu, advantages = torch.broadcast_tensors(*(torch.as_tensor(x, dtype=torch.float64)
                                                   for x in (pi, mu, advantages)))
    shape = pi.shape
    logp = pi.log().reshape(-1, 1).clone().requires_grad_()
    behaviour_logp, adv, mask = mu.log().reshape(-1, 1), advantages.reshape(-1, 1), torch.ones_like(logp)
    if isolated:
        loss = torch.cat([objective(logp[i:i + 1], behaviour_logp[i:i + 1], adv[i:i + 1], mask[i:i + 1],
                                    generator=generator).per_token_loss for i in range(logp.shape[0])])
    else:
        loss = objective(logp, behaviour_logp, adv, mask, generator=generator).per_token_loss
    (grad,) = torch.autograd.grad(loss.sum(), logp, allow_unused=True)  # L = Σ ℓ: every w = 1
    if grad is None:
        return torch.zeros(shape, dtype=logp.dtype)
    return token_gradient_weight(grad, mask, mask)[0].reshape(shape)
