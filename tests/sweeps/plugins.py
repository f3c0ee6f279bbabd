"""Objective plugins for fault tests: a NaN loss (the run fails), a full disk while a marker file exists."""

from __future__ import annotations

import errno
import os

import torch

from workbench.objectives import ObjectiveOutput


def nan_loss(logp, behaviour_logp, advantages, mask, params, generator=None):
    """Policy gradient, then NaN wherever the mask counts (masked tokens stay 0, as the contract asks)."""
    loss = -(logp - behaviour_logp).exp() * advantages * mask
    return ObjectiveOutput(torch.where(mask > 0, loss * float("nan"), loss), {})


nan_loss.paper = "tests"


def disk_full(logp, behaviour_logp, advantages, mask, params, generator=None):
    """Policy gradient, but the disk is full while the file $WORKBENCH_TEST_DISK_FULL exists (training calls only:
    the load-time probe runs in float64)."""
    marker = os.environ.get("WORKBENCH_TEST_DISK_FULL")
    if logp.dtype == torch.float32 and marker and os.path.exists(marker):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return ObjectiveOutput(-(logp - behaviour_logp).exp() * advantages * mask, {})


disk_full.paper = "tests"
