"""Objective plugins loaded by import path in the registry tests: one that keeps the contract, several that don't."""

from __future__ import annotations

import torch
from pydantic import Field

from workbench.objectives import ObjectiveOutput, ObjectiveParams


class ScaleParams(ObjectiveParams):
    scale: float = Field(1.0, gt=0, description="multiplies the policy gradient")


def scaled_pg(logp, behaviour_logp, advantages, mask, params, generator=None):
    """Importance-weighted policy gradient times a constant."""
    return ObjectiveOutput(-params.scale * (logp - behaviour_logp).exp() * advantages * mask, {})


scaled_pg.params = ScaleParams
scaled_pg.paper = "tests"


def wrong_signature(logp, advantages):
    return ObjectiveOutput(-logp * advantages, {})


def returns_a_tensor(logp, behaviour_logp, advantages, mask, params, generator=None):
    return -logp * advantages * mask


def sums_the_batch(logp, behaviour_logp, advantages, mask, params, generator=None):
    return ObjectiveOutput((-logp * advantages * mask).sum(), {})


def ignores_the_mask(logp, behaviour_logp, advantages, mask, params, generator=None):
    return ObjectiveOutput(-logp * advantages, {})


def not_differentiable(logp, behaviour_logp, advantages, mask, params, generator=None):
    return ObjectiveOutput((-logp * advantages * mask).detach(), {})


def raises(logp, behaviour_logp, advantages, mask, params, generator=None):
    raise RuntimeError("boom")


def tensor_metrics(logp, behaviour_logp, advantages, mask, params, generator=None):
    return ObjectiveOutput(-logp * advantages * mask, {"tv/mean": torch.tensor(0.0)})


NOT_A_FUNCTION = 3
