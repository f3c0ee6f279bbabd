"""Step diagnostics: what the trainer measures at every loss beside the loss itself, and writes at every log.

The names are DESIGN.md's (Diagnostics). Per micro-batch, :meth:`StepDiagnostics.record_step` measures the shift
π−μ, the token profile of μ and the mismatch π_old against μ, combined over every rank's tokens; on histogram steps
it keeps the per-token arrays, and :meth:`StepDiagnostics.watch_gradient` reads g = −∂L/∂log π / w from autograd
(:func:`objectives.loss.token_gradient_weight`) for the ``grad_weight/*`` histograms and the batch keeper. At each
log line (:meth:`StepDiagnostics.log`) the scalars, the step's extra scalars (the held-out evaluation) and the
histograms, gathered from every rank, go to the run recorder. Nothing here changes a value the run computes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .batches import BatchKeeper, save_grad_weight
from .objectives.common import masked_mean, mismatch_metrics, shift_metrics
from .objectives.corrections import HISTOGRAM as CORRECTION_HISTOGRAM
from .objectives.corrections import CorrectionOutput
from .objectives.loss import token_gradient_weight
from .ranks import combine_token_metrics, gather_arrays, gather_values
from .topk import TopLogprobs

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


class StepDiagnostics:
    """One run's step diagnostics. ``recorder`` (a RunRecorder; None: the metrics reach TRL's log line only)
    receives every logged step, histograms every ``histogram_every`` steps on ``histogram_bins`` bins;
    ``batch_keeper`` (tracking.keep_batches_every) keeps the loss's inputs for ``workbench replay``."""

    def __init__(self, recorder: Any = None, histogram_every: int = 5, histogram_bins: int = 41,
                 batch_keeper: BatchKeeper | None = None):
        self.recorder = recorder
        self.histogram_every = histogram_every
        self.histogram_bins = histogram_bins
        self.batch_keeper = batch_keeper
        self.max_off_policy = 0.0  # 0 at the end of a run: r ≡ 1 on every token, flagged zero_shift
        self._hist: dict[str, list[np.ndarray]] = defaultdict(list)
        self._step_scalars: dict[str, float] = {}

    def histogram_step(self, step: int) -> bool:
        """Whether the loss at optimizer step ``step`` (TRL's global_step, 0-based) keeps histogram arrays."""
        return self.recorder is not None and (step == 0 or (step + 1) % self.histogram_every == 0)

    def record_correction(self, out: CorrectionOutput, mode: str, step: int) -> None:
        if mode == "train" and self.histogram_step(step):
            self._hist[CORRECTION_HISTOGRAM].append(out.log_weight.float().numpy(force=True))

    def keep_batch(self, step: int, model: torch.nn.Module, inputs: dict[str, Any], loss_weights: torch.Tensor,
                   top_logprobs: TopLogprobs | None) -> Path | None:
        """Hand a training loss's inputs (and the sampler's top-K, when the rollout engine has them) to the batch
        keeper on its steps; the path its g goes to, if any."""
        if self.batch_keeper is None:
            return None
        return self.batch_keeper.keep(step + 1, model, inputs, loss_weights, top_logprobs)

    def watch_gradient(self, logp: torch.Tensor, loss_weights: torch.Tensor, advantages: torch.Tensor,
                       mask: torch.Tensor, histogram: bool, keep_path: Path | None) -> None:
        """Read g_t = −∂L/∂log π_t / w_t exactly from autograd, whatever objective produced the loss, once backward
        reaches log π: into the ``grad_weight/*`` histograms and/or the kept batch's ``grad_weight`` file."""
        if not (histogram or keep_path is not None):
            return
        adv = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages).expand_as(logp)

        def hook(grad: torch.Tensor) -> None:
            g, valid = token_gradient_weight(grad, loss_weights, mask)
            g = g.float()
            if keep_path is not None:
                save_grad_weight(keep_path, g)
            if histogram:
                g, a = g[valid], adv[valid].float()
                self._hist["grad_weight/all"].append(g.numpy(force=True))
                self._hist["grad_weight/pos_adv"].append(g[a > 0].numpy(force=True))
                self._hist["grad_weight/neg_adv"].append(g[a < 0].numpy(force=True))
                self._hist["grad_weight/normalised"].append((g[a != 0] / a[a != 0]).numpy(force=True))

        logp.register_hook(hook)

    @torch.no_grad()
    def record_step(self, mode: str, step: int, logp: torch.Tensor, behaviour_logp: torch.Tensor,
                    mask: torch.Tensor, entropies: torch.Tensor, objective_metrics: dict[str, float],
                    old_logp: torch.Tensor, lag: int, num_processes: int) -> dict[str, float]:
        """This micro-batch's metrics (the family's ``frac/*`` and the shared ones), combined over every rank's tokens.

        ``old_logp`` is log π_old: ``mismatch/*`` measure the sampler against it; ``lag`` (``rollout/lag``) is the
        age of the sampler's weights in optimizer steps."""
        m = mask.float()
        shift = (logp.float().exp() - behaviour_logp.float().exp())
        valid = m > 0
        metrics = {
            **objective_metrics,  # the family's frac/*; the shared names below are the trainer's alone
            "entropy/mean": float(masked_mean(entropies.float(), m)),
            **shift_metrics(logp, behaviour_logp, m),
            "frac/off_policy": float(masked_mean(((logp.float() - behaviour_logp.float()).abs() > OFF_POLICY_TOL)
                                                 .float(), m)),
            **mismatch_metrics(old_logp, behaviour_logp, m),
            "rollout/lag": float(lag),
        }
        if num_processes > 1:
            # Every rank's tokens, so that N processes log what one process logs for the same global batch
            # (the median needs every rank's values, not a mean of medians).
            metrics = combine_token_metrics(metrics, int(valid.sum()))
            sampled = gather_values(behaviour_logp.float()[valid])
            metrics.update(behaviour_profile(sampled, torch.ones_like(sampled, dtype=torch.bool)))
        else:
            metrics.update(behaviour_profile(behaviour_logp, valid))
        self.max_off_policy = max(self.max_off_policy, metrics["frac/off_policy"])
        if mode == "train" and self.histogram_step(step):
            self._hist["shift/signed"].append(shift[valid].numpy(force=True))
            self._hist["entropy/tokens"].append(entropies.float()[valid].numpy(force=True))
            log10_mu = behaviour_logp.float()[valid] / math.log(10)
            self._hist["behaviour/log10_prob"].append(log10_mu.clamp(min=LOG10_PROB_RANGE[0]).numpy(force=True))
            self._hist["ratio/log"].append((logp.float() - behaviour_logp.float())[valid].numpy(force=True))
        return metrics

    def add_step_scalars(self, scalars: dict[str, float]) -> None:
        """Scalars measured outside the loss at this optimizer step (the held-out evaluation): written in the
        step's log line."""
        self._step_scalars.update(scalars)

    def log(self, step: int, logs: dict[str, float], num_processes: int) -> None:
        """Write a log line of TRL's (its averages over the logging window) under DESIGN.md's names, the step's
        extra scalars and the histograms kept since the last line."""
        if self.recorder is None or "loss" not in logs:
            return
        scalars = {k: float(v) for k, v in logs.items()
                   if isinstance(v, (int, float)) and v is not None and k not in ("step", "epoch")}
        if "reward" in scalars:
            scalars["reward/mean"] = scalars.pop("reward")
        scalars.update(self._step_scalars)
        self._step_scalars = {}
        self.recorder.log_scalars(step, scalars)
        if self._hist:
            arrays = {name: np.concatenate(parts) for name, parts in self._hist.items()}
            if num_processes > 1:
                # counts from every rank, not the main one's alone
                arrays = gather_arrays(arrays, HISTOGRAMS + OPTIONAL_HISTOGRAMS)
            self.recorder.log_histograms(step, arrays, self.histogram_bins,
                                         ranges={"behaviour/log10_prob": LOG10_PROB_RANGE})
            self._hist.clear()
