"""An objective plugin whose loss is NaN on every valid token: the trainer's non-finite-loss check fails the run."""

from __future__ import annotations

import torch

from workbench.objectives import ObjectiveOutput


def nan_loss(logp, behaviour_logp, advantages, mask, params, generator=None):
    """Policy gradient, then NaN wherever the mask counts (masked tokens stay 0, as the contract asks)."""
    loss = -(logp - behaviour_logp).exp() * advantages * mask
    return ObjectiveOutput(torch.where(mask > 0, loss * float("nan"), loss), {})


nan_loss.paper = "tests"
