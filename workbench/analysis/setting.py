"""What a report measured and under what: the metric's definition, the base policy's score, the config every arm
shares, and per arm the shift the objectives saw, how often each objective's trust region bound, and entropy.

These are the numbers a summary of the study quotes (``reports/README.md`` quotes only what a report holds).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .compare import Comparison, seeds_frame
from .document import Block, Heading, Paragraph, Table
from .load import Sweep

BINDING_PREFIX = "frac/"
NOT_BINDING = ("frac/off_policy",)  # tokens with μ ≠ π at all: the shift's reach, not a trust region binding
ENTROPY = "entropy/mean"
TENTH = 0.1


def metric_definition(sweep: Sweep) -> str:
    base = sweep.spec.base
    prompts, samples = base.get("eval_prompts", "the configured"), base.get("eval_samples", "k")
    length, temperature = base.get("max_completion_length", "the"), base.get("temperature", 1.0)
    definitions = {
        "eval/p_correct": (f"`eval/p_correct` is the probability that one completion sampled from the policy at "
                           f"temperature {temperature} within {length} tokens is rewarded, averaged over the first "
                           f"{prompts} held-out prompts. It is computed exactly (every rewarded completion is "
                           "enumerated and its probability taken teacher-forced), so it is a deterministic function of "
                           "the weights, with no sampling noise: `eval/accuracy` estimates the same quantity from "
                           f"{samples} samples per prompt."),
        "eval/accuracy": (f"`eval/accuracy` is the mean reward of {samples} completions sampled per prompt at "
                          f"temperature {temperature} over the first {prompts} held-out prompts: it carries the "
                          "binomial noise of those samples on top of the policy's quality."),
    }
    return definitions.get(sweep.metric, f"`{sweep.metric}` as the run logged it at its final evaluation.")


def base_sentence(sweep: Sweep) -> str | None:
    """The base policy's score: the step-0 evaluation of every finished run (one policy, before any update)."""
    finished = sweep.finished
    if "base" not in finished:
        return None
    values = pd.to_numeric(finished["base"], errors="coerce").dropna().to_numpy()
    if not len(values):
        return None
    if np.ptp(values) == 0:
        return (f"Base policy (step 0, before any update): {sweep.metric} {values[0]:.3f}, the same in all "
                f"{len(values)} finished runs.")
    estimate = stats.mean_interval(values)
    return (f"Base policy (step 0, before any update): {sweep.metric} {estimate.value:.3f} on average over "
            f"{len(values)} finished runs (from {values.min():.3f} to {values.max():.3f}).")


def shared_config(sweep: Sweep) -> str:
    spec = sweep.spec
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(spec.base.items()) if k != "tracking")
    seeds = (f"{', '.join(map(str, spec.seeds))}" if not spec.sequential else
             f"0, 1, … in looks of {', '.join(map(str, spec.look_sizes))} per arm, added until resolved")
    return (f"Config every arm shares (the sweep file's base; unset fields take RunConfig's defaults): {shown or 'none'}."
            f" Seeds: {seeds}.")


def arm_measures(sweep: Sweep, comparison: Comparison) -> pd.DataFrame:
    """Per arm (finished runs, steps after 0): mean |π − μ|, its per-step maximum (mean over steps and the largest),
    every binding fraction the objective logged (mean over steps), entropy over the first and last tenth of steps."""
    steps = sweep.steps
    steps = steps[steps["run"].isin(set(sweep.finished["run"])) & (steps["step"] > 0)]
    rows = []
    for result in comparison.arms:
        arm_steps = steps[steps["arm"] == result.arm]
        if arm_steps.empty:
            continue
        row: dict[str, Any] = {"arm": result.arm, "runs": arm_steps["run"].nunique()}
        if "tv/mean" in arm_steps:
            row["mean |π − μ|"] = arm_steps["tv/mean"].mean()
        if "tv/max" in arm_steps:
            row["per-step max |π − μ|, mean"] = arm_steps["tv/max"].mean()
            row["per-step max |π − μ|, largest"] = arm_steps["tv/max"].max()
        for column in sorted(c for c in arm_steps if c.startswith(BINDING_PREFIX) and c not in NOT_BINDING):
            values = arm_steps[column].dropna()
            if len(values):
                row[f"{column} (mean over steps)"] = values.mean()
        if ENTROPY in arm_steps:
            last = arm_steps.groupby("run")["step"].transform("max")
            first_part = arm_steps[arm_steps["step"] <= np.ceil(TENTH * last)]
            last_part = arm_steps[arm_steps["step"] > np.floor((1 - TENTH) * last)]
            row["entropy, first tenth"] = first_part[ENTROPY].mean()
            row["entropy, last tenth"] = last_part[ENTROPY].mean()
        rows.append(row)
    frame = pd.DataFrame(rows)
    entropy = [c for c in frame if c.startswith("entropy")]
    return frame[[c for c in frame if c not in entropy] + entropy]


def _cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, (float, np.floating)) or not np.isfinite(value):
        return "—" if not isinstance(value, (int, np.integer)) else str(value)
    if column.startswith(BINDING_PREFIX):
        return f"{value:.4%}"
    return f"{value:.4f}" if "π − μ" in column else f"{value:.2f}"


def metrics_frame(sweep: Sweep, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per arm and eval metric: the base policy's and the final mean, and the final value's SD over seeds."""
    seeds = seeds_frame(sweep) if seeds is None else seeds
    rows = []
    for metric in ("eval/p_correct", "eval/accuracy", "eval/greedy_accuracy"):
        final, base = f"final {metric}", f"base {metric}"
        if final not in seeds:
            continue
        for arm, group in seeds.groupby("arm", sort=True):
            values = group[final].dropna()
            rows.append({"metric": metric, "arm": arm, "seeds": len(values),
                         "base mean": group[base].mean() if base in group else np.nan,
                         "final mean": values.mean(), "final SD over seeds": values.std(ddof=1)})
    return pd.DataFrame(rows)


NOISE_METRICS = ("eval/p_correct", "eval/accuracy")


def noise_share(seeds: pd.DataFrame, reps: int = stats.REPS, level: float = stats.LEVEL
                ) -> tuple[float, float, float] | None:
    """The share of sampled accuracy's seed-to-seed variance that the exact metric removes, 1 − mean over arms of
    var(p_correct) / mean of var(accuracy), with a percentile bootstrap interval that resamples each arm's seeds
    (a run's two values together). By hand: scipy's bootstrap resamples every sample with its own index or all with
    one, and arms with different seed counts need one each. None without both metrics and two seeds in an arm."""
    columns = [f"final {m}" for m in NOISE_METRICS]
    if seeds.empty or not set(columns) <= set(seeds):
        return None
    arms = [group[columns].dropna().to_numpy() for _, group in seeds.groupby("arm", sort=True)]
    arms = [a for a in arms if len(a) >= 2]
    if not arms:
        return None

    def share(samples: list[np.ndarray]) -> np.ndarray:  # each (..., n, 2): p_correct, accuracy
        exact = np.mean([s[..., 0].var(axis=-1, ddof=1) for s in samples], axis=0)
        sampled = np.mean([s[..., 1].var(axis=-1, ddof=1) for s in samples], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - exact / sampled

    value = float(share(arms))
    if not np.isfinite(value):
        return None
    rng = np.random.default_rng(0)
    draws = share([a[rng.integers(0, len(a), (reps, len(a)))] for a in arms])
    draws = draws[np.isfinite(draws)]
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return value, float(low), float(high)


def noise_sentence(metrics: pd.DataFrame, seeds: pd.DataFrame) -> str | None:
    """How much of the seed-to-seed variance of sampled accuracy the exact metric removes (pooled over arms)."""
    found = noise_share(seeds)
    if metrics.empty or found is None:
        return None
    pooled = {m: float(np.sqrt((metrics.loc[metrics["metric"] == m, "final SD over seeds"] ** 2).mean()))
              for m in NOISE_METRICS}
    share, low, high = found
    return (f"Seed-to-seed SD of the final value, pooled over arms (root mean of the per-arm variances): "
            f"{pooled['eval/accuracy']:.4f} for sampled `eval/accuracy`, {pooled['eval/p_correct']:.4f} for "
            f"`eval/p_correct`: the exact metric removes {share:.0%} of the seed-to-seed variance (bootstrap 95% CI "
            f"[{low:.0%}, {high:.0%}], each arm's seeds resampled): the evaluation's own sampling noise; what "
            "remains is how much the trained policies differ.")


def blocks(sweep: Sweep, comparison: Comparison) -> list[Block]:
    out: list[Block] = [Heading("What was measured"), Paragraph(metric_definition(sweep))]
    base = base_sentence(sweep)
    out += [Paragraph(base)] if base else []
    seeds = seeds_frame(sweep)
    metrics = metrics_frame(sweep, seeds)
    if not metrics.empty:
        out.append(Table(("metric", "arm", "seeds", "base policy, mean", "final, mean", "final, SD over seeds"), tuple(
            (r.metric, r.arm, str(r.seeds), f"{r[3]:.4f}", f"{r[4]:.4f}", f"{r[5]:.4f}")
            for r in metrics.itertuples(index=False))))
        noise = noise_sentence(metrics, seeds)
        out += [Paragraph(noise)] if noise else []
    out.append(Paragraph(shared_config(sweep)))
    measures = arm_measures(sweep, comparison)
    if not measures.empty:
        columns = list(measures.columns)
        out += [Heading("Shift, binding and entropy per arm", 3), Paragraph(
            "Over every logged step after 0 of the arm's finished runs: the mean total-variation shift |π − μ| of a "
            "sampled token, the largest shift in a step (its mean over steps, and the largest of all), the fraction "
            "of tokens each objective's trust region acted on (clipped, masked, given a negative weight; mean over "
            "steps; an objective logs only its own), and the mean policy entropy (nats per token) over the first and "
            "last tenth of the steps. The same numbers at full precision: measures.csv."),
            Table(tuple(columns), tuple(tuple(_cell(c, row[c]) for c in columns) for _, row in measures.iterrows()))]
    return out
