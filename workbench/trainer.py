"""WorkbenchGRPOTrainer: TRL's GRPOTrainer with a swappable per-token objective.

Only TRL's hooks are overridden: ``_compute_loss``, the private method TRL calls for the loss (the objective from
the registry, μ from the rollout engine, the aggregation as a separate axis; assembled by
:func:`objectives.loss.assemble_loss`), and ``log`` (DESIGN.md's metric names, mirrored to the run record). Sampling
comes in through TRL's ``rollout_func``; evaluation through a callback. The step diagnostics live in
:mod:`workbench.diagnostics`, TRL's private names in :mod:`workbench.trl_private`. TRL is pinned exactly: tests
guard the inputs it hands ``_compute_loss``.

Importing TRL's trainer prints under WANDB_MODE=offline and TRL warns about ``rollout_func``; the runner imports
this module where a run starts, with both silenced (:func:`workbench.runner.trainer_class`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import GRPOTrainer

from . import trl_private
from .diagnostics import StepDiagnostics
from .objectives import Correction, Objective
from .objectives.common import proximal_logp
from .objectives.loss import assemble_loss
from .rollout import RolloutEngine
from .topk import TopLogprobs

# What `_compute_loss` reads from TRL's inputs; a TRL release that renames any of them fails here.
REQUIRED_INPUTS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
                   "num_items_in_batch", "sampling_per_token_logps")


@dataclass(frozen=True)
class LossSetting:
    """The loss a WorkbenchGRPOTrainer optimises. ``objective`` None: TRL's own ``loss_type`` (a ``trl:`` spec);
    ``aggregation``: token_mean | sequence_mean | fixed_horizon; ``correction``: RunConfig.correction, bound (None
    = off); ``seed``: the generator of objectives that sample (Clip-Cov); ``top_logprobs``: the rollout engine's
    provider of the sampler's top-K, which the top-K objectives read (TRL passes no extra rollout field to the loss).
    """

    objective: Objective | None
    aggregation: str = "token_mean"
    correction: Correction | None = None
    seed: int = 0
    top_logprobs: TopLogprobs | None = None


class WorkbenchGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose loss is ``loss`` with μ = the sampler's log-probs; ``diagnostics`` measures every step
    (default: metrics into TRL's log line only, no run record)."""

    def __init__(self, *args: Any, loss: LossSetting, diagnostics: StepDiagnostics | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loss_setting = loss
        self.diagnostics = diagnostics or StepDiagnostics()
        self.objective_generator = torch.Generator().manual_seed(loss.seed)

    # ---- loss ------------------------------------------------------------------------------------

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        missing = [k for k in REQUIRED_INPUTS if k not in inputs]
        if missing:
            raise RuntimeError(f"TRL handed _compute_loss no {missing}: the TRL pin and WorkbenchGRPOTrainer disagree")
        mode = "train" if self.model.training else "eval"
        step = self.state.global_step
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
        behaviour_logp = inputs["sampling_per_token_logps"]
        advantages = inputs["advantages"]
        # π_old: TRL computes it when a batch serves several updates; otherwise π_old = π.
        old_logp = inputs.get("old_per_token_logps")
        input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logits_to_keep = inputs["completion_ids"].size(1)

        def forward() -> tuple[torch.Tensor, torch.Tensor]:
            return trl_private.per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep)

        objective = self.loss_setting.objective
        if objective is None:
            with torch.no_grad():  # the diagnostics' π, taken first: a correction reads it too (no extra forward)
                logp, entropies = forward()
            loss, metrics = self._trl_loss(model, inputs, logp, mask, mode)
            self._record_step(mode, logp, behaviour_logp, mask, entropies, metrics, old_logp)
            return loss

        top_k, top_logprobs = None, self.loss_setting.top_logprobs
        unwrapped = self.accelerator.unwrap_model(model)
        if objective.spec.uses_top_k:
            if top_logprobs is None:
                raise RuntimeError(f"objective {objective.name!r} needs the rollout engine's top-K (rollout_top_k > 0)")
            # π at the sampler's top ids from this very forward (its hidden states), not from a second pass.
            (logp, entropies), top_k = top_logprobs.scored_forward(unwrapped, forward, inputs, self.temperature)
        else:
            logp, entropies = forward()
        loss_weights = self._aggregation_weights(inputs, mask, mode)
        result = assemble_loss(objective, logp, behaviour_logp, advantages, mask, loss_weights, old_logp=old_logp,
                               correction=self.loss_setting.correction, beta=self.beta,
                               ref_logp=inputs.get("ref_per_token_logps"), generator=self.objective_generator,
                               top_k=top_k)
        if result.correction is not None:
            self.diagnostics.record_correction(result.correction, mode, step)
        keep_path = self.diagnostics.keep_batch(step, unwrapped, inputs, loss_weights, top_logprobs) \
            if self.model.training else None
        if not torch.isfinite(result.loss):
            raise FloatingPointError(f"loss is {result.loss.item()} at step {step}")
        if logp.requires_grad:
            self.diagnostics.watch_gradient(logp, loss_weights, advantages, mask,
                                            histogram=self.diagnostics.histogram_step(step), keep_path=keep_path)
        self._record_step(mode, logp, behaviour_logp, mask, entropies, result.metrics, old_logp)
        return result.loss

    def _trl_loss(self, model: torch.nn.Module, inputs: dict[str, Any], logp: torch.Tensor, mask: torch.Tensor,
                  mode: str) -> tuple[torch.Tensor, dict[str, float]]:
        """TRL's own loss and the correction's metrics.

        No correction: TRL's old log-probs become μ, so its ratio is π/μ (bypass). A correction: π_old stays TRL's
        (π itself at a batch's only update) and its weight multiplies TRL's per-token loss
        (:func:`trl_private.trl_loss`)."""
        behaviour_logp = inputs["sampling_per_token_logps"]
        if self.loss_setting.correction is None:
            return trl_private.trl_loss(self, model, {**inputs, "old_per_token_logps": behaviour_logp}), {}
        correction = self.loss_setting.correction
        out = correction(logp, inputs.get("old_per_token_logps"), behaviour_logp, inputs["advantages"], mask)
        self.diagnostics.record_correction(out, mode, self.state.global_step)
        return trl_private.trl_loss(self, model, inputs, importance_weight=out.weight.to(logp.dtype)), out.metrics

    def _aggregation_weights(self, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> torch.Tensor:
        """Per-token weights w with loss = Σ w·ℓ_t, already divided for gradient accumulation."""
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        mask = mask.to(torch.float32)
        aggregation = self.loss_setting.aggregation
        if aggregation == "token_mean":
            # Tokens of the whole optimizer batch, as TRL's dapo: num_items_in_batch spans the generation batch.
            tokens = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                tokens = tokens * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return mask / tokens
        if aggregation == "sequence_mean":
            return mask / mask.sum(-1, keepdim=True).clamp(min=1.0) / mask.size(0) / accumulation
        if aggregation == "fixed_horizon":  # Dr. GRPO: a constant normaliser, no length bias
            return mask / (mask.size(0) * self.max_completion_length) / accumulation
        raise ValueError(f"aggregation must be token_mean, sequence_mean or fixed_horizon; got {aggregation!r}")

    def _record_step(self, mode: str, logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor,
                     entropies: torch.Tensor, objective_metrics: dict[str, float],
                     old_logp: torch.Tensor | None) -> None:
        """The step diagnostics of this micro-batch, into TRL's log line (which averages them over the window)."""
        lag = self.rollout_func.served_lag if isinstance(self.rollout_func, RolloutEngine) else 0
        metrics = self.diagnostics.record_step(mode, self.state.global_step, logp, behaviour_logp, mask, entropies,
                                               objective_metrics, proximal_logp(logp, old_logp), lag,
                                               self.accelerator.num_processes)
        trl_private.add_metrics(self, mode, metrics)

    # ---- logging ---------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL averages its metrics into ``logs``; the diagnostics rename them to DESIGN.md's and write the record."""
        super().log(logs, start_time)
        self.diagnostics.log(self.state.global_step, logs, self.accelerator.num_processes)
