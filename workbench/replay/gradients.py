"""Gradients: for each arm (objective, or objective × correction) the per-token weight g and the parameter gradient,
at one kept step and over a run's kept steps.

The loss is the trainer's own (:func:`objectives.loss.assemble_loss`) and g is read from autograd as the trainer's
hook reads it (:func:`objectives.loss.token_gradient_weight`), whatever produced the loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batches import kept_steps, load_step
from ..config import ConfigError, RunConfig
from ..objectives import Objective, get_objective, get_spec
from ..objectives.common import proximal_logp
from ..objectives.loss import assemble_loss, token_gradient_weight, valid_tokens
from ..tracking import load_run
from .forward import Policy


@dataclass
class Arm:
    """One replayed loss: an objective, optionally times a correction."""

    label: str
    objective: Objective
    correction: Any = None


def make_arms(objectives: Sequence[str], corrections: Sequence[str] = ()) -> list[Arm]:
    arms = [Arm(name, get_objective(name)) for name in objectives]
    if corrections:
        from ..objectives import get_correction

        arms += [Arm(f"{name}+{c}", get_objective(name), get_correction(c)) for name in objectives for c in corrections]
    return arms


@dataclass
class StepReplay:
    """What every arm did at one kept step."""

    step: int
    labels: list[str]
    gram: np.ndarray  # (n, n) dot products of the parameter gradients (float64)
    tokens: dict[str, np.ndarray]  # mu, pi, old, adv (valid tokens of all micro-batches, flattened)
    weights: dict[str, np.ndarray]  # label → g per valid token
    logged: np.ndarray | None = None  # the trainer's own g at this step (same tokens), when it kept it

    @property
    def norms(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.gram), 0.0, None))

    @property
    def cosine(self) -> np.ndarray:
        norms = self.norms
        denom = np.outer(norms, norms)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, self.gram / np.where(denom > 0, denom, 1.0), np.nan)


def replay_batches(policy: Policy, batches: Sequence[dict[str, torch.Tensor]], arms: Sequence[Arm], step: int,
                   seed: int = 0, beta: float = 0.0, logged: Sequence[torch.Tensor | None] = ()) -> StepReplay:
    """Replay one step's micro-batches (weights already loaded): g per token and ∇θ per arm (summed over them)."""
    params = list(policy.params.values())
    grads = [[torch.zeros_like(p, dtype=torch.float32) for p in params] for _ in arms]
    per_token: dict[str, list[torch.Tensor]] = {arm.label: [] for arm in arms}
    tokens: dict[str, list[torch.Tensor]] = {k: [] for k in ("mu", "pi", "old", "adv")}
    own: list[torch.Tensor] = []
    for j, batch in enumerate(batches):
        needs_top_k = "top_k_ids" in batch and any(arm.objective.spec.uses_top_k for arm in arms)
        logp, top_k = policy.forward(batch, needs_top_k)
        for i, (g, d_params) in enumerate(arm_gradients(arms, logp, batch, params, top_k,
                                                                     generator_seed=seed * 1_000_003 + step * 101 + j,
                                                                     beta=beta)):
            per_token[arms[i].label].append(g)
            for acc, d in zip(grads[i], d_params):
                if d is not None:
                    acc += d.float()
        for key, values in batch_tokens(logp, batch).items():
            tokens[key].append(values)
        if j < len(logged) and logged[j] is not None:
            own.append(logged[j][valid_tokens(batch_mask(batch), batch["loss_weights"])])
    vectors = [torch.cat([g.flatten() for g in per_arm]).double() for per_arm in grads]
    gram = np.array([[float(vectors[a] @ vectors[b]) for b in range(len(arms))] for a in range(len(arms))])
    return StepReplay(
        step=step, labels=[arm.label for arm in arms], gram=gram,
        tokens={k: torch.cat(v).numpy() for k, v in tokens.items()},
        weights={k: torch.cat(v).detach().numpy() for k, v in per_token.items()},
        logged=torch.cat(own).numpy() if own and len(own) == len(batches) else None)


def arm_gradients(arms: Sequence[Arm], logp: torch.Tensor, batch: dict[str, torch.Tensor],
                  params: Sequence[torch.Tensor] = (), top_k: Any = None, generator_seed: int = 0,
                  beta: float = 0.0):
    """For each arm in turn: (g over the valid tokens, ∂loss/∂θ for ``params``), with the loss the trainer builds
    (:func:`objectives.loss.assemble_loss`) and g as its autograd hook reads it (``token_gradient_weight``).

    ``logp`` is log π of the batch's completion tokens with its graph (a leaf works: then ``params`` is empty)."""
    mask, w = batch_mask(batch), batch["loss_weights"]
    for i, arm in enumerate(arms):
        if arm.objective.spec.uses_top_k and top_k is None:
            raise ConfigError(f"--objectives: {arm.label} needs the sampler's top-K, which this run did not keep "
                              "(its rollout_top_k was 0)")
        generator = torch.Generator().manual_seed(generator_seed)  # Clip-Cov's draw: the same for every replay
        loss = assemble_loss(arm.objective, logp, batch["sampling_per_token_logps"], batch["advantages"], mask, w,
                             old_logp=batch.get("old_per_token_logps"), correction=arm.correction, beta=beta,
                             ref_logp=batch.get("ref_per_token_logps"), generator=generator, top_k=top_k).loss
        d_logp, *d_params = torch.autograd.grad(loss, [logp, *params], retain_graph=i < len(arms) - 1,
                                                allow_unused=True)
        g, valid = token_gradient_weight(d_logp, w, mask)
        yield g[valid].float(), d_params


def batch_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss's token mask, as the trainer builds it from TRL's inputs."""
    return batch["completion_mask"] * batch.get("tool_mask", 1)


@torch.no_grad()
def batch_tokens(logp: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """μ, π, π_old and A of the valid tokens, flattened in the order of :func:`arm_gradients`' g."""
    valid = valid_tokens(batch_mask(batch), batch["loss_weights"])
    adv = batch["advantages"].float()
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    return {"mu": batch["sampling_per_token_logps"].float()[valid].exp(), "pi": logp.detach().float()[valid].exp(),
            "old": proximal_logp(logp, batch.get("old_per_token_logps")).float()[valid].exp(),
            "adv": adv.expand_as(logp)[valid]}


@dataclass
class RunReplay:
    run_dir: Path
    config: dict[str, Any]
    steps: list[StepReplay]

    @property
    def labels(self) -> list[str]:
        return self.steps[0].labels if self.steps else []

    def own_check(self) -> dict[str, float] | None:
        """max |g_replay − g_trainer| / max |g_trainer| of the run's own objective over the kept steps, or None."""
        label = own_label(self.config)
        pairs = [(s.weights[label], s.logged) for s in self.steps if label in s.weights and s.logged is not None]
        if not pairs:
            return None
        err = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in pairs)
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0 for _, b in pairs)
        return {"objective": label, "steps": len(pairs), "max_abs_diff": err, "max_abs_weight": scale}


def own_label(config: dict[str, Any]) -> str | None:
    """The label of the run's own loss among the arms: its objective's name at its defaults, else
    ``own:<objective>`` (its parameters and correction as it trained); None for TRL's own losses."""
    objective = config["objective"]
    if get_spec(objective).kind == "trl":
        return None
    return f"own:{objective}" if config.get("objective_params") or config.get("correction") else objective


def replay_run(run_dir: str | Path, objectives: Sequence[str], corrections: Sequence[str] = (),
               steps: Sequence[int] | None = None, policy: Policy | None = None,
               on_step: Callable[[int], None] | None = None, top_k_optional: bool = False,
               threads: int | None = None) -> RunReplay:
    """Replay the kept steps of one run for every objective (× correction). ``top_k_optional`` (``--objectives
    all``): the top-K families are left out when the run did not keep the sampler's top-K, instead of refused.
    ``threads``: torch's CPU threads while replaying; None = the run's own (``summary.json`` machine.threads), so
    that the kernels, and so the floats, are the trainer's."""
    run_dir = Path(run_dir)
    record = load_run(run_dir)
    config = RunConfig.parse({k: v for k, v in record.config.items()}, source=str(run_dir / "config.json"))
    available = kept_steps(run_dir)
    steps = list(available) if steps is None else list(steps)
    if top_k_optional and steps and "top_k_ids" not in load_step(run_dir, steps[0])[1][0]:
        objectives = [o for o in objectives if not get_objective(o).spec.uses_top_k]
    threads = threads or (record.summary.get("machine") or {}).get("threads")
    with _threads(threads):
        return _replay_run(run_dir, record, config, objectives, corrections, steps, policy, on_step)


@contextlib.contextmanager
def _threads(threads: int | None):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _replay_run(run_dir: Path, record: Any, config: RunConfig, objectives: Sequence[str], corrections: Sequence[str],
                steps: Sequence[int], policy: Policy | None, on_step: Callable[[int], None] | None) -> RunReplay:
    policy = policy or Policy(config)
    arms = make_arms(objectives, corrections)
    own = own_label(record.config)
    if own is not None and own not in [arm.label for arm in arms]:  # the run's own loss, as it trained
        from ..objectives import correction_from_setting

        arms.append(Arm(own, get_objective(config.objective, **config.objective_params),
                        correction_from_setting(record.config.get("correction"))))
    results = []
    for step in steps:
        meta, batches, weights, logged = load_step(run_dir, step)
        if weights is None:
            raise ConfigError(f"{run_dir} step {step}: kept without weights ({meta.get('skipped', 'not saved')}); "
                              "raise tracking.keep_batches_max_mb")
        policy.load(weights, f"{run_dir} step {step}")
        results.append(replay_batches(policy, batches, arms, step, seed=config.seed, beta=config.beta,
                                      logged=logged))
        if on_step is not None:
            on_step(step)
    return RunReplay(run_dir, record.config, results)
