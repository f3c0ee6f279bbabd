"""Per-token policy objectives, one family per module, registered by name.

    from workbench.objectives import get_objective, available_objectives
    obj = get_objective("drpo", delta=0.15, advantage_weight="abs")
    out = obj(logp, behaviour_logp, advantages, mask)
    out.per_token_loss, out.metrics
"""

from __future__ import annotations

# Importing the family modules registers them.
from . import cispo, cov, dppo, dppo_topk, drpo, gmpo, gpg, grpo, gspo, luspo, pg, sapo, spo, vespo  # noqa: F401
from . import presets  # noqa: F401  (after the families it refers to)
from .corrections import (
    Correction,
    CorrectionOutput,
    available_correction_presets,
    available_corrections,
    correction_from_setting,
    get_correction,
    get_correction_spec,
)
from .geometry import gradient_weight
from .registry import (
    Objective,
    ObjectiveOutput,
    ObjectiveParams,
    ObjectiveSpec,
    available_objectives,
    available_presets,
    available_trl_losses,
    get_objective,
    get_spec,
    register_objective,
    register_preset,
)

__all__ = [
    "Correction",
    "CorrectionOutput",
    "Objective",
    "ObjectiveOutput",
    "ObjectiveParams",
    "ObjectiveSpec",
    "available_correction_presets",
    "available_corrections",
    "available_objectives",
    "correction_from_setting",
    "available_presets",
    "available_trl_losses",
    "get_correction",
    "get_correction_spec",
    "get_objective",
    "get_spec",
    "gradient_weight",
    "register_objective",
    "register_preset",
]
