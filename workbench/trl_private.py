"""Every use of TRL's private API, in one place: the names a new TRL may rename without notice.

pyproject.toml pins TRL exactly (==1.16.0), and tests/test_trl_private.py fails, naming the name, when one of
``PINNED`` is gone or no longer read the way this module relies on. Nothing else in workbench reads an underscore
attribute of TRL, flips its vLLM flags or imports ``trl.trainer.utils``; the trainer overrides ``_compute_loss``,
the hook TRL calls for the loss (it has no public one).

Why the private names at all: TRL 1.16 exposes the loss only as the private ``_compute_loss`` hook, the policy's
per-token log-probs only through a private method, its logged metrics only as a private dict, and a per-token
weight on its own losses only on its vLLM path.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch

# What this module reads, as (where, name): a class attribute, an attribute every instance sets in __init__, or a
# module-level name. tests/test_trl_private.py checks each against the installed TRL.
PINNED: tuple[tuple[str, str], ...] = (
    ("trl.GRPOTrainer", "_compute_loss"),
    ("trl.GRPOTrainer", "_get_per_token_logps_and_entropies"),
    ("trl.GRPOTrainer instance", "_metrics"),
    ("trl.GRPOTrainer instance", "use_vllm"),
    ("trl.GRPOTrainer instance", "vllm_importance_sampling_correction"),
    ("trl.trainer.utils", "add_fused_lm_head"),
)


def per_token_logps_and_entropies(trainer: Any, model: torch.nn.Module, input_ids: torch.Tensor,
                                  attention_mask: torch.Tensor,
                                  logits_to_keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π, entropy) of the completion tokens, as TRL's own loss computes them (its fused LM head, temperature,
    chunking). Only ``_get_per_token_logps_and_entropies`` computes them; a forward of our own would differ in the
    last bits from what TRL's losses, and so the ``trl:`` baselines, read."""
    logp, entropies, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                                    compute_entropy=True)
    return logp, entropies


def trl_loss(trainer: Any, model: torch.nn.Module, inputs: dict[str, Any],
             importance_weight: torch.Tensor | None = None) -> torch.Tensor:
    """TRL's own loss (its ``loss_type``) on ``inputs``: GRPOTrainer's ``_compute_loss``, the only place it exists.

    ``importance_weight`` (B, T) or (B, 1), detached: multiplied into TRL's per-token loss before its KL term and
    aggregation. TRL 1.16 does that with ``inputs["importance_sampling_ratio"]`` only on its vLLM path
    (trl/trainer/grpo_trainer.py 3146-3147: ``if self.use_vllm and self.vllm_importance_sampling_correction and
    self.loss_type != "vespo"``; for ``vespo`` it is folded into the gamma weight instead, 3125-3135); no public
    switch turns it on without vLLM, so the two flags are set for this call only (nothing else in
    ``_compute_loss`` reads them).
    """
    from trl import GRPOTrainer

    if importance_weight is None:
        return GRPOTrainer._compute_loss(trainer, model, inputs)
    flags = (trainer.use_vllm, trainer.vllm_importance_sampling_correction)
    trainer.use_vllm = trainer.vllm_importance_sampling_correction = True
    try:
        return GRPOTrainer._compute_loss(trainer, model, {**inputs, "importance_sampling_ratio": importance_weight})
    finally:
        trainer.use_vllm, trainer.vllm_importance_sampling_correction = flags


def add_metrics(trainer: Any, mode: str, metrics: dict[str, float]) -> None:
    """Append this micro-batch's values to TRL's per-mode metric lists, which its ``log`` averages over the
    logging window (and gathers nothing more): ``_metrics`` is the only way into TRL's own log line."""
    for key, value in metrics.items():
        trainer._metrics[mode][key].append(value)


def add_fused_lm_head(model: torch.nn.Module, temperature: float) -> None:
    """Patch ``model`` as GRPOTrainer patches the policy it trains (log-probs and entropy from a fused LM head),
    so that replay's forward is the trainer's; TRL exports the patch only from ``trl.trainer.utils``."""
    # Importing trl.trainer.utils imports transformers' W&B integration, which prints "[INFO] Running in WANDB
    # offline mode" to stdout under WANDB_MODE=offline (transformers offers no switch for the print).
    with contextlib.redirect_stdout(io.StringIO()):
        from trl.trainer.utils import add_fused_lm_head as patch
    patch(model, temperature=temperature, cast_lm_head_to_fp32=False, outputs=("log_probs", "entropy"))
