"""Counterfactual replay: every objective on the very batches a run trained on (``workbench replay``).

A run that kept batches (``tracking.keep_batches_every``, see :mod:`workbench.batches`) holds, for each kept
optimizer step, the batch its loss saw (tokens, μ, π_old, advantages, the aggregation's per-token weights)
and the trainable weights just before that update. Replay loads those weights, runs ONE forward as the
trainer does (TRL's fused LM head, the run's temperature and train precision) to get π, and for each
objective (and objective × correction) reads

- the per-token gradient weight g_t = −∂loss/∂log π_t / w_t from autograd, exactly as the trainer's
  histogram hook reads it, whatever produced the loss;
- the gradient of the trainable parameters (one backward each, summed over the step's micro-batches).

From those: the cosine matrix between the objectives' parameter gradients, each gradient's norm relative
to plain ``pg``, and per objective the share of tokens whose g/A differs from the on-policy weight
(g/A = 1: every objective's weight at π = μ) by more than 10 %, flips sign, or is zero, split by μ and by
the advantage's sign.

What replay is not: it measures one update from one state, the same state for every objective. It says
whether and where the objectives push the weights differently on the run's own data, not where training
under each objective would have gone (after one update the batches themselves would differ).

Deterministic: no sampling (Clip-Cov's random draw uses a generator seeded by the run's seed and the step),
so replaying twice gives identical numbers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batches import BATCHES_DIR, kept_steps, load_step, trainable_state
from ..config import ConfigError, RunConfig
from ..objectives import Objective, available_objectives, get_objective, get_spec
from ..objectives.common import proximal_logp
from ..objectives.loss import assemble_loss, token_gradient_weight, valid_tokens
from ..trl_private import add_fused_lm_head
from ..tracking import load_run

REFERENCE = "pg"  # the gradient norms are relative to plain importance-sampled PG
CHANGE_TOLERANCE = 0.1  # |g/A − 1| above it: the weight differs from the on-policy weight by more than 10 %
# μ groups of the token table (DESIGN.md's token regime: ratio clips and divergences disagree on rare tokens).
MU_BINS: tuple[tuple[str, float, float], ...] = (("mu<0.01", 0.0, 0.01), ("0.01<=mu<0.1", 0.01, 0.1),
                                                 ("mu>=0.1", 0.1, math.inf))
ADV_SIGNS = ("all", "A>0", "A<0")
# What an objective did to a token (the scatter figure's colours and the table's columns).
KEPT, CHANGED, FLIPPED, ZERO = "as on-policy", "changed >10%", "flipped sign", "zero"


# ---- what to replay ----------------------------------------------------------------------------------


def resolve_runs(target: str | Path, root: str | Path | None = None) -> list[Path]:
    """The run folders that kept batches under ``target``: a run folder, any folder holding runs, or a sweep name.

    Raises ConfigError naming the target when it is nothing of the kind or no run under it kept batches."""
    path = Path(target)
    if not path.exists():
        from ..sweeps.store import sweep_folder

        path = sweep_folder(str(target), root)
        if not path.is_dir():
            raise ConfigError(f"{target}: neither a run folder, a folder of runs nor a sweep name")
    if (path / "summary.json").is_file():
        runs = [path]
    else:
        runs = sorted({p.parent.parent.parent for p in path.glob(f"**/{BATCHES_DIR}/step-*/meta.json")},
                      key=_natural_key)
    kept = [run for run in runs if kept_steps(run)]
    if not kept:
        raise ConfigError(f"{target}: no kept batches to replay; train with `--set tracking.keep_batches_every=N` "
                          "(or tracking: {keep_batches_every: N} in the run config or the sweep's base)")
    return kept


def _natural_key(path: Path) -> tuple:
    """trials/2 before trials/10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for part in path.parts for p in part.split("-"))


def parse_objectives(spec: str | None, run_objective: str | None = None) -> list[str]:
    """``all`` (every registered family at its defaults), a comma list (families or presets), or None: the run's
    own objective and the quickstart's three; ``pg`` is always included (the norms are relative to it)."""
    if spec is None or spec.strip() == "":
        names = [n for n in (run_objective, "grpo", "dppo_tv", "drpo") if n and get_spec(n).kind != "trl"]
    elif spec.strip() == "all":
        names = available_objectives()
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    return _known([REFERENCE] + [n for n in dict.fromkeys(names) if n != REFERENCE], get_objective, "--objectives")


def parse_corrections(spec: str | None) -> list[str]:
    """The corrections (families or presets) to cross with every objective (``--corrections``)."""
    if not spec:
        return []
    from ..objectives import get_correction

    return _known([n.strip() for n in spec.split(",") if n.strip()], get_correction, "--corrections")


def _known(names: list[str], get: Callable[[str], Any], option: str) -> list[str]:
    """``names`` when ``get`` knows every one; else a one-line error naming the option."""
    for name in names:
        try:
            get(name)
        except ValueError as err:
            raise ConfigError(f"{option}: {err}") from None
    return names


def parse_steps(spec: str | None, available: Sequence[int]) -> list[int]:
    """``--steps 20,40`` or None (every kept step); a step the run did not keep is refused."""
    if not spec:
        return list(available)
    try:
        steps = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps {spec!r}: expected a comma list of step numbers") from None
    missing = [s for s in steps if s not in available]
    if missing:
        raise ConfigError(f"--steps: step {missing[0]} was not kept (kept: {', '.join(map(str, available))})")
    return steps


# ---- one forward, one backward per objective ---------------------------------------------------------


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


class Policy:
    """A run's policy at its kept steps: the base loaded as the run loaded it, the kept weights put in, the
    trainer's forward (TRL's fused LM head at the run's temperature, its autocast)."""

    def __init__(self, config: RunConfig):
        from ..models import load_policy
        from ..tasks import get_task

        self.config = config
        task = get_task(config.task, **config.task_params)
        self.model, self.tokenizer = load_policy(config.model, config.lora, task, seed=config.seed)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        add_fused_lm_head(base, config.temperature)  # as GRPOTrainer patches the policy it trains
        self.model.train()
        self.params = trainable_state(self.model)

    def load(self, weights: dict[str, torch.Tensor], where: str) -> None:
        names = set(self.params)
        if set(weights) != names:
            extra, missing = sorted(set(weights) - names), sorted(names - set(weights))
            raise ConfigError(f"{where}: the kept weights do not fit the run's policy "
                              f"(unexpected {extra[:2]}, missing {missing[:2]})")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(weights[name].to(p.dtype))

    def forward(self, batch: dict[str, torch.Tensor], top_k: bool) -> tuple[torch.Tensor, Any]:
        """log π of the completion tokens, with its graph, as ``_get_per_token_logps_and_entropies`` computes it;
        with ``top_k`` also (log π, log μ) over the sampler's kept top-K ∪ {sampled}, from the same pass."""
        from ..topk import capture_hidden, top_k_pairs

        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        keep = batch["completion_ids"].size(1)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        labels[:, :-keep] = -100
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.config.train_precision == "bf16" \
            else contextlib.nullcontext()
        # A fixed seed for whatever the forward draws (LoRA or attention dropout, if a run set any): deterministic.
        with capture_hidden(self.model) if top_k else contextlib.nullcontext() as hidden, autocast, \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            logp = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                              fused_lm_head=True).log_probs[:, -keep:]
        if not top_k:
            return logp, None
        return logp, top_k_pairs(self.model, torch.cat(hidden), logp, batch["sampling_per_token_logps"],
                                 batch["completion_ids"], batch["top_k_logps"], batch["top_k_ids"],
                                 self.config.temperature)


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


# ---- the token table ---------------------------------------------------------------------------------


def token_classes(g: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """What an objective did to each token with A ≠ 0, against the on-policy weight g/A = 1: ZERO (no gradient),
    FLIPPED (g/A < 0), CHANGED (|g/A − 1| > 10 %), KEPT; tokens with A = 0 get ''."""
    out = np.full(g.shape, "", dtype=object)
    has = adv != 0
    ratio = np.divide(g, adv, out=np.zeros_like(g, dtype=np.float64), where=has)
    out[has] = KEPT
    out[has & (np.abs(ratio - 1) > CHANGE_TOLERANCE)] = CHANGED
    out[has & (ratio < 0)] = FLIPPED
    out[has & (g == 0)] = ZERO
    return out


def token_rows(result: StepReplay) -> list[dict[str, Any]]:
    """One row per arm × μ group × advantage sign: tokens, and the fractions changed / flipped / zero (over tokens
    with A ≠ 0), mean g/A."""
    mu, adv = result.tokens["mu"], result.tokens["adv"]
    rows = []
    for label in result.labels:
        g = result.weights[label]
        classes = token_classes(g, adv)
        ratio = np.divide(g, adv, out=np.zeros_like(g, dtype=np.float64), where=adv != 0)
        for bin_name, low, high in (("all", 0.0, math.inf), *MU_BINS):
            in_bin = (mu >= low) & (mu < high)
            for sign in ADV_SIGNS:
                chosen = in_bin & (adv != 0) & {"all": adv != 0, "A>0": adv > 0, "A<0": adv < 0}[sign]
                n = int(chosen.sum())
                frac = (lambda cls: float(np.isin(classes[chosen], cls).mean()) if n else float("nan"))
                rows.append({"step": result.step, "objective": label, "mu": bin_name, "advantage": sign, "tokens": n,
                             "frac_changed": frac([CHANGED, FLIPPED, ZERO]), "frac_flipped": frac([FLIPPED]),
                             "frac_zero": frac([ZERO]),
                             "mean_weight": float(ratio[chosen].mean()) if n else float("nan")})
    return rows


def gradient_rows(result: StepReplay) -> list[dict[str, Any]]:
    """One row per pair of arms: the cosine of their parameter gradients, and each norm relative to pg's."""
    norms, cosine = result.norms, result.cosine
    ref = norms[result.labels.index(REFERENCE)] if REFERENCE in result.labels else float("nan")
    rows = []
    for a, la in enumerate(result.labels):
        for b, lb in enumerate(result.labels):
            rows.append({"step": result.step, "objective": la, "other": lb, "cosine": float(cosine[a, b]),
                         "norm": float(norms[a]), "norm_vs_pg": float(norms[a] / ref) if ref > 0 else float("nan")})
    return rows


# ---- a run -------------------------------------------------------------------------------------------


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


# ---- summaries (the CLI's files and the report's section read these) ----------------------------------


def summarise(replays: Sequence[RunReplay]) -> dict[str, Any]:
    """Cosine matrix and norms averaged over every kept step of every run, and the token table averaged over steps
    (fractions weighted by tokens), as plain JSON."""
    labels = list(dict.fromkeys(label for rr in replays for label in rr.labels))  # runs may add their own arm
    n = len(labels)
    cos, norm, zero = [], [], np.zeros(n, dtype=int)
    rows = []
    for rr in replays:
        for s in rr.steps:
            at = [labels.index(label) for label in s.labels]
            full = np.full((n, n), np.nan)
            full[np.ix_(at, at)] = s.cosine
            cos.append(full)
            zero[at] += s.norms == 0
            ref = s.norms[s.labels.index(REFERENCE)]
            scaled = np.full(n, np.nan)
            scaled[at] = s.norms / ref if ref > 0 else np.nan
            norm.append(scaled)
            rows.extend(token_rows(s))
    table = token_table(rows)
    return {
        "objectives": labels,
        "runs": [str(rr.run_dir) for rr in replays],
        "steps": sum(len(rr.steps) for rr in replays),
        "cosine": _round(_nan_reduce(np.nanmean, cos)),
        "cosine_min": _round(_nan_reduce(np.nanmin, cos)),
        "norm_vs_pg": _round(_nan_reduce(np.nanmean, norm)),
        # A zero gradient (every token masked or clipped) has no direction: its cosines are left out of the mean.
        "zero_gradient_steps": {label: int(n) for label, n in zip(labels, zero) if n},
        "tokens": table,
        "own_check": [c for c in (rr.own_check() for rr in replays) if c is not None],
    }


def _nan_reduce(reduce: Callable, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``reduce`` over steps ignoring NaN (an undefined cosine); all-NaN entries stay NaN, without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(np.stack(arrays), axis=0)


def token_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of :func:`token_rows` pooled over steps (and runs): each fraction weighted by its tokens."""
    pooled: dict[tuple[str, str, str], dict[str, float]] = {}
    for row in rows:
        key = (row["objective"], row["mu"], row["advantage"])
        acc = pooled.setdefault(key, {"tokens": 0, "frac_changed": 0.0, "frac_flipped": 0.0, "frac_zero": 0.0,
                                      "mean_weight": 0.0})
        n = row["tokens"]
        acc["tokens"] += n
        for col in ("frac_changed", "frac_flipped", "frac_zero", "mean_weight"):
            acc[col] += row[col] * n if n else 0.0
    out = []
    for (objective, mu, sign), acc in pooled.items():
        n = acc["tokens"]
        out.append({"objective": objective, "mu": mu, "advantage": sign, "tokens": n,
                    **{col: (round(acc[col] / n, 6) if n else None)
                       for col in ("frac_changed", "frac_flipped", "frac_zero", "mean_weight")}})
    return out


def _round(a: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else round(float(v), 9) for v in row] for row in np.atleast_2d(a)] \
        if a.ndim == 2 else [None if not np.isfinite(v) else round(float(v), 9) for v in a]


def telling_step(replays: Sequence[RunReplay]) -> StepReplay:
    """The step the token figure shows: where the objectives' gradients disagree most (lowest mean cosine), the
    first such in run and step order."""
    steps = [s for rr in replays for s in rr.steps]
    scores = [float(_nan_reduce(np.nanmean, [s.cosine]).mean()) if len(s.labels) > 1 else 1.0 for s in steps]
    scores = [1.0 if not np.isfinite(v) else v for v in scores]
    return steps[int(np.argmin(scores))]


def cosine_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the mean cosine matrix with the norm relative to pg as the last column."""
    labels = summary["objectives"]
    header = ["", *labels, "‖∇‖ / ‖∇pg‖"]
    rows = [[a, *(_fmt(v, 3) for v in summary["cosine"][i]), _fmt(summary["norm_vs_pg"][i], 3)]
            for i, a in enumerate(labels)]
    return header, rows


def rare_table(summary: dict[str, Any], mu: str = "mu<0.01") -> tuple[list[str], list[list[str]]]:
    """(header, rows): per objective, % of tokens in μ group ``mu`` (and all tokens) changed / flipped / zeroed."""
    header = ["objective", "tokens", "changed >10%", "flipped", "zero", "mean g/A", "all tokens: changed"]
    by = {(r["objective"], r["mu"], r["advantage"]): r for r in summary["tokens"]}
    rows = []
    for label in summary["objectives"]:
        r, a = by.get((label, mu, "all")), by.get((label, "all", "all"))
        if r is None:
            continue
        rows.append([label, str(r["tokens"]), _pct(r["frac_changed"]), _pct(r["frac_flipped"]),
                     _pct(r["frac_zero"]), _fmt(r["mean_weight"], 3), _pct(a["frac_changed"] if a else None)])
    return header, rows


def _fmt(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(summary: dict[str, Any], title: str, scatter_step: int) -> str:
    parts = [f"# Replay: {title}",
             f"{len(summary['runs'])} run(s), {summary['steps']} kept step(s). One update from the kept state for every "
             "objective: whether and where they push the weights differently on the run's own batches, not where "
             "training under each would have gone.",
             "## Cosine of the parameter gradients (mean over steps) and norm relative to pg",
             _md_table(*cosine_table(summary))]
    for mu, name in (("mu<0.01", "μ < 0.01"), ("0.01<=mu<0.1", "0.01 ≤ μ < 0.1"), ("mu>=0.1", "μ ≥ 0.1")):
        parts += [f"## Tokens with {name}: g/A against the on-policy weight 1", _md_table(*rare_table(summary, mu))]
    if summary["zero_gradient_steps"]:
        parts.append("Zero gradient (no direction; those steps are left out of its cosines): " + ", ".join(
            f"`{label}` at {n} of {summary['steps']} step(s)" for label, n in summary["zero_gradient_steps"].items())
            + ".")
    for check in summary["own_check"]:
        parts.append(f"Check: the run's own objective `{check['objective']}` recomputed over {check['steps']} "
                     f"step(s) differs from the weights its trainer applied by at most {check['max_abs_diff']:.2e} "
                     f"(largest weight {check['max_abs_weight']:.2e}).")
    parts += ["![cosine](cosine.png)", "![tokens](tokens.png)",
              f"![tokens at step {scatter_step}, where the objectives disagree most](tokens_step.png)"]
    return "\n\n".join(parts) + "\n"
