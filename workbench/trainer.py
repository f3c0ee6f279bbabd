"""WorkbenchGRPOTrainer: TRL's GRPOTrainer with a swappable per-token objective.

Only two TRL methods are overridden, both documented extension points: ``_compute_loss`` (the
objective from the registry, μ from the rollout engine, the aggregation as a separate axis, the
diagnostics) and ``log`` (DESIGN.md's metric names, mirrored to the run record). Sampling comes in
through TRL's ``rollout_func``; evaluation through a callback. TRL is pinned exactly: tests guard
the inputs it hands ``_compute_loss``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections import defaultdict
from typing import Any

import numpy as np
import torch

# rollout_func is experimental in TRL; the pin and tests/test_trainer.py guard it, so its notice is noise.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# Importing GRPOTrainer imports transformers' W&B integration, which prints "[INFO] Running in WANDB offline mode"
# to stdout under WANDB_MODE=offline, before every message of every command that trains. This import is the only
# one in the package that loads that module (transformers offers no switch for the print), so it is silenced here.
with contextlib.redirect_stdout(io.StringIO()):
    from trl import GRPOTrainer  # noqa: E402

from .objectives import Correction, CorrectionOutput, Objective
from .objectives.corrections import HISTOGRAM as CORRECTION_HISTOGRAM
from .objectives.common import masked_mean, mismatch_metrics, shift_metrics
from .batches import BatchKeeper
from .ranks import combine_token_metrics, gather_arrays, gather_values
from .rollout import RolloutEngine
from .topk import TopKStore, capture_hidden, top_k_inputs

# What `_compute_loss` reads from TRL's inputs; a TRL release that renames any of them fails here.
REQUIRED_INPUTS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
                   "num_items_in_batch", "sampling_per_token_logps")

# |log r| below this is float noise between two fp32 forwards of the same weights, not a shift.
OFF_POLICY_TOL = 1e-5

# Logged every step for every objective; families add their frac/* (see objectives) and evals add eval/*.
MISMATCH = ("mismatch/kl", "mismatch/k3_kl", "mismatch/chi2_token", "mismatch/chi2_seq", "mismatch/log_ppl_abs_diff",
            "mismatch/ppl_ratio", "mismatch/is_ess")  # π_old against μ (objectives.common.mismatch_metrics)
SCALARS = ("reward/mean", "entropy/mean", "tv/mean", "tv/max", "ratio/mean", "frac/off_policy", "grad_norm",
           "behaviour/frac_rare", "behaviour/frac_very_rare", "behaviour/median_prob", "rollout/lag", *MISMATCH)
HISTOGRAMS = ("grad_weight/all", "grad_weight/pos_adv", "grad_weight/neg_adv", "grad_weight/normalised",
              "shift/signed", "entropy/tokens", "behaviour/log10_prob", "ratio/log")
# Logged only under a correction (RunConfig.correction), beside HISTOGRAMS.
OPTIONAL_HISTOGRAMS = (CORRECTION_HISTOGRAM,)

# The token regime (DESIGN.md): ratio clips and divergence trust regions disagree only on rare tokens.
RARE_PROB, VERY_RARE_PROB = 0.1, 0.01
# log10 μ on fixed bins, so token profiles compare bin by bin across runs; rarer tokens land in the first bin.
LOG10_PROB_RANGE = (-6.0, 0.0)


def behaviour_profile(behaviour_logp: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """behaviour/*: how rare the sampled tokens were under the sampler (fractions below 0.1, 0.01; median μ)."""
    mu = behaviour_logp.float()[valid].exp()
    if mu.numel() == 0:
        return {}
    return {
        "behaviour/frac_rare": float((mu < RARE_PROB).float().mean()),
        "behaviour/frac_very_rare": float((mu < VERY_RARE_PROB).float().mean()),
        "behaviour/median_prob": float(mu.quantile(0.5)),
    }


class WorkbenchGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose loss is ``objective`` (None: TRL's own ``loss_type``) with μ = the sampler's log-probs.

    Extra arguments: ``objective``, ``aggregation`` (token_mean | sequence_mean | fixed_horizon),
    ``recorder`` (a RunRecorder receiving every logged step), ``histogram_every``/``histogram_bins``,
    ``objective_seed`` (the generator of objectives that sample, e.g. Clip-Cov), ``top_k_store`` (the rollout
    engine's store of the sampler's top-K, which the top-K objectives read: TRL passes no extra rollout field
    to the loss), ``correction`` (RunConfig.correction, bound; None = off) and ``batch_keeper`` (a BatchKeeper
    when tracking.keep_batches_every is set, for ``workbench replay``).
    """

    def __init__(self, *args: Any, objective: Objective | None, aggregation: str = "token_mean",
                 recorder: Any = None, histogram_every: int = 5, histogram_bins: int = 41,
                 objective_seed: int = 0, top_k_store: TopKStore | None = None,
                 correction: Correction | None = None, batch_keeper: BatchKeeper | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.aggregation = aggregation
        self.recorder = recorder
        self.histogram_every = histogram_every
        self.histogram_bins = histogram_bins
        self.objective_generator = torch.Generator().manual_seed(objective_seed)
        self.top_k_store = top_k_store
        self.correction = correction
        self.batch_keeper = batch_keeper
        self.extra_scalars: dict[str, float] = {}  # e.g. eval metrics, merged into the next log line
        self.max_off_policy = 0.0  # 0 at the end of a run: r ≡ 1 on every token, flagged zero_shift
        self._hist: dict[str, list[np.ndarray]] = defaultdict(list)

    # ---- loss ------------------------------------------------------------------------------------

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        missing = [k for k in REQUIRED_INPUTS if k not in inputs]
        if missing:
            raise RuntimeError(f"TRL handed _compute_loss no {missing}: the TRL pin and WorkbenchGRPOTrainer disagree")
        mode = "train" if self.model.training else "eval"
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
        behaviour_logp = inputs["sampling_per_token_logps"]
        input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logits_to_keep = inputs["completion_ids"].size(1)

        if self.objective is None:
            with torch.no_grad():  # the diagnostics' π, taken first: a correction reads it too (no extra forward)
                logp, entropies, _ = self._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, compute_entropy=True)
            # TRL's own loss, made off-policy against the real sampler (see _trl_loss).
            loss, corrected = self._trl_loss(model, inputs, logp, behaviour_logp, mask, mode)
            self._record_step(mode, logp, behaviour_logp, inputs["advantages"], mask, entropies, corrected,
                              inputs.get("old_per_token_logps"))
            return loss

        store = self.top_k_store if self.objective.spec.uses_top_k else None
        if self.objective.spec.uses_top_k and store is None:
            raise RuntimeError(f"objective {self.objective.name!r} needs the rollout engine's top-K "
                               "(rollout_top_k > 0)")
        unwrapped = self.accelerator.unwrap_model(model)
        # Top-K: π at the sampler's top ids from this very forward (its hidden states), not from a second pass.
        with capture_hidden(unwrapped) if store is not None else contextlib.nullcontext() as hidden:
            logp, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, compute_entropy=True)
        top_k = None if store is None else top_k_inputs(unwrapped, torch.cat(hidden), logp, behaviour_logp, inputs,
                                                        store, self.temperature)
        advantages = inputs["advantages"]
        # π_old: TRL computes it when a batch serves several updates; otherwise π_old = π (the objective's default).
        old_logp = inputs.get("old_per_token_logps")
        correction = self._correction_weight(mode, logp, old_logp, behaviour_logp, advantages, mask)
        # Under a correction the objective is decoupled: it reads π against π_old; the weight carries π_old/μ.
        reference = behaviour_logp if correction is None else (logp.detach() if old_logp is None else old_logp)
        out = self.objective(logp, reference, advantages, mask, generator=self.objective_generator,
                             old_logp=old_logp, top_k=top_k)
        per_token_loss = out.per_token_loss if correction is None else out.per_token_loss * correction.weight
        corrected = {} if correction is None else correction.metrics
        if self.beta != 0.0:
            ref = inputs["ref_per_token_logps"]
            per_token_loss = per_token_loss + self.beta * (torch.exp(ref - logp) - (ref - logp) - 1) * mask
        weights = self._aggregation_weights(inputs, mask, mode)
        self._keep_batch(model, inputs, logp, weights)  # tracking.keep_batches_every: for workbench replay
        loss = (per_token_loss * weights).sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.state.global_step}")
        if self._histogram_step() and logp.requires_grad:
            self._hook_gradient_weight(logp, weights, advantages, mask)
        self._record_step(mode, logp, behaviour_logp, advantages, mask, entropies, out.metrics | corrected, old_logp)
        return loss

    # ---- kept batches (workbench replay) -----------------------------------------------------------

    def _keep_batch(self, model: torch.nn.Module, inputs: dict[str, Any], logp: torch.Tensor,
                    weights: torch.Tensor) -> None:
        """Hand the loss's inputs to the batch keeper on its steps; reads and writes only, changes no value."""
        if self.batch_keeper is not None and self.model.training:
            self.batch_keeper.keep(self.state.global_step + 1, self.accelerator.unwrap_model(model), inputs, logp,
                                   weights, self.top_k_store)

    # ---- mismatch correction (objectives.corrections) ----------------------------------------------

    def _correction_weight(self, mode: str, logp: torch.Tensor, old_logp: torch.Tensor | None,
                           behaviour_logp: torch.Tensor, advantages: torch.Tensor,
                           mask: torch.Tensor) -> CorrectionOutput | None:
        """The correction's detached weight from this forward's π, TRL's π_old (None: π) and μ; no forward."""
        if self.correction is None:
            return None
        out = self.correction(logp, old_logp, behaviour_logp, advantages, mask)
        if mode == "train" and self._histogram_step():
            self._hist[CORRECTION_HISTOGRAM].append(out.log_weight.float().numpy(force=True))
        return out

    def _trl_loss(self, model: torch.nn.Module, inputs: dict[str, Any], logp: torch.Tensor,
                  behaviour_logp: torch.Tensor, mask: torch.Tensor, mode: str) -> tuple[torch.Tensor, dict[str, float]]:
        """TRL's own ``_compute_loss`` and the correction's metrics.

        No correction: TRL's old log-probs become μ, so its ratio is π/μ (bypass). A correction: π_old stays TRL's
        (π itself at a batch's only update) and the weight goes in as ``inputs["importance_sampling_ratio"]``, which
        TRL 1.16 multiplies into the per-token loss, (B, T) or (B, 1), before the KL term and the aggregation, but
        only on its vLLM path (trl/trainer/grpo_trainer.py 3146-3147: ``if self.use_vllm and
        self.vllm_importance_sampling_correction and self.loss_type != "vespo"``); for ``vespo`` it is folded into
        the gamma weight instead (3125-3135; get_gamma_weights 3001-3003). The two flags are set for this call only;
        nothing else in ``_compute_loss`` reads them.
        """
        if self.correction is None:
            return super()._compute_loss(model, {**inputs, "old_per_token_logps": behaviour_logp}), {}
        out = self._correction_weight(mode, logp, inputs.get("old_per_token_logps"), behaviour_logp,
                                      inputs["advantages"], mask)
        flags = (self.use_vllm, self.vllm_importance_sampling_correction)
        self.use_vllm = self.vllm_importance_sampling_correction = True
        try:
            loss = super()._compute_loss(model, {**inputs, "importance_sampling_ratio": out.weight.to(logp.dtype)})
        finally:
            self.use_vllm, self.vllm_importance_sampling_correction = flags
        return loss, out.metrics

    def _aggregation_weights(self, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> torch.Tensor:
        """Per-token weights w with loss = Σ w·ℓ_t, already divided for gradient accumulation."""
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        mask = mask.to(torch.float32)
        if self.aggregation == "token_mean":
            # Tokens of the whole optimizer batch, as TRL's dapo: num_items_in_batch spans the generation batch.
            tokens = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                tokens = tokens * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return mask / tokens
        if self.aggregation == "sequence_mean":
            return mask / mask.sum(-1, keepdim=True).clamp(min=1.0) / mask.size(0) / accumulation
        if self.aggregation == "fixed_horizon":  # Dr. GRPO: a constant normaliser, no length bias
            return mask / (mask.size(0) * self.max_completion_length) / accumulation
        raise ValueError(f"aggregation must be token_mean, sequence_mean or fixed_horizon; got {self.aggregation!r}")

    # ---- diagnostics -----------------------------------------------------------------------------

    def _histogram_step(self) -> bool:
        step = self.state.global_step
        return self.recorder is not None and (step == 0 or (step + 1) % self.histogram_every == 0)

    def _hook_gradient_weight(self, logp: torch.Tensor, weights: torch.Tensor, advantages: torch.Tensor,
                              mask: torch.Tensor) -> None:
        """Read g_t = −∂ℓ/∂log π_t exactly from autograd, whatever objective produced the loss."""
        valid = mask.bool() & (weights > 0)
        adv = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages).expand_as(logp)

        def hook(grad: torch.Tensor) -> None:
            g = (-grad[valid] / weights[valid]).float()
            a = adv[valid].float()
            self._hist["grad_weight/all"].append(g.numpy(force=True))
            self._hist["grad_weight/pos_adv"].append(g[a > 0].numpy(force=True))
            self._hist["grad_weight/neg_adv"].append(g[a < 0].numpy(force=True))
            self._hist["grad_weight/normalised"].append((g[a != 0] / a[a != 0]).numpy(force=True))

        logp.register_hook(hook)

    @torch.no_grad()
    def _record_step(self, mode: str, logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor,
                     mask: torch.Tensor, entropies: torch.Tensor, objective_metrics: dict[str, float],
                     old_logp: torch.Tensor | None = None) -> None:
        """Per-step diagnostics; ``old_logp`` is log π_old (TRL's, when a batch serves several updates; else π_old
        = π, this forward detached): ``mismatch/*`` measure the sampler against it, ``rollout/lag`` is the age of
        the sampler's weights in optimizer steps."""
        m = mask.float()
        shift = (logp.float().exp() - behaviour_logp.float().exp())
        valid = m > 0
        metrics = {
            **objective_metrics,  # the family's frac/*; the shared names below are the trainer's alone
            "entropy/mean": float(masked_mean(entropies.float(), m)),
            **shift_metrics(logp, behaviour_logp, m),
            "frac/off_policy": float(masked_mean(((logp.float() - behaviour_logp.float()).abs() > OFF_POLICY_TOL)
                                                 .float(), m)),
            **mismatch_metrics(logp if old_logp is None else old_logp, behaviour_logp, m),
            "rollout/lag": float(self.rollout_func.served_lag if isinstance(self.rollout_func, RolloutEngine) else 0),
        }
        if self.accelerator.num_processes > 1:
            # Every rank's tokens, so that N processes log what one process logs for the same global batch
            # (the median needs every rank's values, not a mean of medians).
            metrics = combine_token_metrics(metrics, int(valid.sum()))
            sampled = gather_values(behaviour_logp.float()[valid])
            metrics.update(behaviour_profile(sampled, torch.ones_like(sampled, dtype=torch.bool)))
        else:
            metrics.update(behaviour_profile(behaviour_logp, valid))
        for key, value in metrics.items():
            self._metrics[mode][key].append(value)
        self.max_off_policy = max(self.max_off_policy, metrics["frac/off_policy"])
        if mode == "train" and self._histogram_step():
            self._hist["shift/signed"].append(shift[valid].numpy(force=True))
            self._hist["entropy/tokens"].append(entropies.float()[valid].numpy(force=True))
            log10_mu = behaviour_logp.float()[valid] / math.log(10)
            self._hist["behaviour/log10_prob"].append(log10_mu.clamp(min=LOG10_PROB_RANGE[0]).numpy(force=True))
            self._hist["ratio/log"].append((logp.float() - behaviour_logp.float())[valid].numpy(force=True))

    # ---- logging ---------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL averages its metrics into ``logs``; we rename to DESIGN.md's names and write the run record."""
        super().log(logs, start_time)
        if self.recorder is None or "loss" not in logs:
            return
        step = self.state.global_step
        scalars = {k: float(v) for k, v in logs.items()
                   if isinstance(v, (int, float)) and v is not None and k not in ("step", "epoch")}
        if "reward" in scalars:
            scalars["reward/mean"] = scalars.pop("reward")
        scalars.update(self.extra_scalars)
        self.extra_scalars = {}
        if any(math.isnan(scalars[k]) for k in ("loss", "grad_norm") if k in scalars):
            self.recorder.nonfinite_loss = True  # NaN is not recorded: say so in the summary
        self.recorder.log_scalars(step, {k: v for k, v in scalars.items() if not math.isnan(v)})
        if self._hist:
            arrays = {name: np.concatenate(parts) for name, parts in self._hist.items()}
            if self.accelerator.num_processes > 1:
                # counts from every rank, not the main one's alone
                arrays = gather_arrays(arrays, HISTOGRAMS + OPTIONAL_HISTOGRAMS)
            self.recorder.log_histograms(step, arrays, self.histogram_bins,
                                         ranges={"behaviour/log10_prob": LOG10_PROB_RANGE})
            self._hist.clear()
