"""The words and tables of a report: the summary a reader sees first, the results table, flagged runs."""

from __future__ import annotations

import pandas as pd

from . import regime, stats
from .compare import ArmResult, Comparison
from .document import Block, Bullets, Heading, Paragraph, Table
from .load import Sweep
from ..config import RunConfig
from ..tasks import describe_task

RESULT_HEADERS = ("objective", "arm", "seeds", "mean [95% CI]", "IQM [95% CI]", "Δ vs baseline [95% CI]", "test",
                  "p", "TOST p", "verdict", "MDE, 80% power (planning)", "seeds for the margin (planning)")
FEW_SEEDS = 5


def methods(margin: float) -> str:
    return ("Intervals are 95% over seeds (a seed is the unit, never a step): Student's t for an arm's mean. The "
            "difference from the baseline is paired by seed when both arms ran the same seeds (they share the seed's "
            "first batches and evaluation prompts; paired t interval, and from "
            f"{stats.WILCOXON_MIN_PAIRS} pairs Wilcoxon's signed-rank p beside it), else Welch's unequal-variance "
            "interval; its p is the same scipy test, so an interval excludes 0 exactly when p < 0.05. "
            f"Equivalence: two one-sided tests (TOST) against the margin ±{_num(margin)} of the metric, fixed in the "
            "sweep file (equivalence_margin) before the runs. Verdicts, the only words the summary uses: **matches** "
            "when TOST p < 0.05 (the 90% interval lies inside the margin); else **better** or **worse** when the "
            "95% interval excludes 0; else **not resolved** (a difference that is not significant is not shown to be "
            "absent). Planning figures, not findings: the minimum detectable effect (MDE) is the smallest true "
            "difference a two-sided test at α = 0.05 on these seeds detects with 80% power at the observed spread; "
            "seeds for the margin is how many seeds per arm TOST would need to show \"matches\" with 80% power if "
            "the true difference were 0. Newcombe's score interval for P(beats baseline) (results.csv); a BCa "
            f"bootstrap for the IQM from {stats.IQM_MIN_SEEDS} seeds up only ({stats.REPS} resamples; with fewer "
            "seeds it is too narrow, so the IQM is given alone). No interval is given from one seed or from seeds "
            "that all scored the same.")


def _num(x: float, signed: bool = False) -> str:
    """Every value and difference of the report's words and tables: 3 decimals, one rounding."""
    return f"{round(x, 12):{'+' if signed else ''}.3f}"


def _ci(e: stats.Estimate) -> str:
    return f"[{_num(e.low)}, {_num(e.high)}]" if e.has_interval else f"(no interval: {e.why})"


def _ci_phrase(e: stats.Estimate) -> str:
    return f"95% CI {_ci(e)}" if e.has_interval else f"no interval: {e.why}"


def _with_ci(e: stats.Estimate | None, signed: bool = False) -> str:
    if e is None:
        return "—"
    return f"{_num(e.value, signed)} {_ci(e)}"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _needed(n: float | None) -> str:
    if n is None:
        return "—"
    return f"> {stats.MAX_SEEDS:,}" if n == float("inf") else f"{n:,.0f}"


def headline(sweep: Sweep, comparison: Comparison) -> str:
    """Each arm against its named baseline (its own setting's, for a baseline per setting), in one of the four
    words, with its interval and test."""
    metric = f"final `{sweep.metric}`"
    arms = comparison.arms
    if not arms:
        return "No run of this sweep has finished yet: there is nothing to compare."
    if not comparison.baselines:
        means = "; ".join(f"{a.arm} {_num(a.mean.value)} ({_ci_phrase(a.mean)}, {_seeds(a.mean.seeds)})" for a in arms)
        return (f"No baseline is named (--baseline, or baseline: in the sweep file), so no arm is compared with "
                f"another: mean {metric} per arm: {means}.")
    named = f"; named by {comparison.baseline_source}" if comparison.baseline_source else ""
    per_setting = len(comparison.baselines) > 1
    parts = []
    for arm in comparison.baselines:
        base = comparison.result(arm)
        where = f"In the setting {base.setting}, against" if per_setting else "Against"
        opening = (f"{where} the baseline **{base.arm}** (mean {metric} {_num(base.mean.value)}, "
                   f"{_ci_phrase(base.mean)}, {_seeds(base.mean.seeds)}{named}), margin ±{_num(comparison.margin)}: ")
        others = [a for a in arms if a.baseline == base.arm]
        parts.append(opening + ("; ".join(verdict_clause(a) for a in others) if others else
                                "it is the only arm with finished runs, so there is nothing to compare it with") + ".")
    return " ".join(parts)


def verdict_clause(a: ArmResult) -> str:
    """'drpo **matches** (Δ −0.001, 95% CI [−0.012, 0.010], paired t p = 0.81; TOST p = 0.004)'."""
    if a.test is None:
        why = a.difference.why if a.difference is not None else "no test"
        return (f"{a.arm} **{a.verdict or 'not resolved'}** (mean {_num(a.mean.value)}, {_ci_phrase(a.mean)}; "
                f"no test: {why})")
    t = a.test
    wilcoxon = f", Wilcoxon p = {t.wilcoxon_p:.3g}" if t.wilcoxon_p is not None else ""
    tost = f"TOST p = {a.tost_p:.3g}" if a.tost_p is not None else "no TOST"
    planning = f"; MDE {_num(a.mde)}" if a.mde is not None else ""
    return (f"{a.arm} **{a.verdict}** (Δ {_num(t.difference.value, signed=True)}, {_ci_phrase(t.difference)}, "
            f"{t.method} p = {t.p:.3g}{wilcoxon}; {tost}{planning})")


def few_seeds_sentence(comparison: Comparison) -> str | None:
    few = [f"{a.arm} ({a.mean.seeds})" for a in comparison.arms if a.mean.seeds < FEW_SEEDS]
    if not few:
        return None
    return (f"Fewer than {FEW_SEEDS} seeds: {', '.join(few)}; with so few seeds the intervals are wide and only a "
            "large difference can be resolved.")


def flagged_sentence(comparison: Comparison, total: int) -> str:
    flagged = comparison.flagged
    if flagged.empty:
        return f"No run was flagged ({total} runs: none failed, was pruned, unreadable or missing, or had zero shift)."
    items = [f"{r.run} ({r.objective}, seed {r.seed}): {', '.join([r.status] * (r.status != 'finished') + r.flags)}"
             for r in flagged.itertuples()]
    counts = flagged["status"].value_counts()
    zero = int(flagged["flags"].map(lambda f: "zero_shift" in f).sum())
    known = ("failed", "pruned", "running", "interrupted", "unreadable", "missing")
    parts = [f"{int(counts.get(s, 0))} {s}" for s in known if counts.get(s, 0)]
    parts += [f"{int(n)} {s}" for s, n in counts.items() if s not in (*known, "finished") and n]
    parts += [f"{zero} with zero shift (μ = π on every token, so the objectives could not differ)"] if zero else []
    other = int(((flagged["status"] == "finished")
                 & flagged["flags"].map(lambda f: any(x != "zero_shift" for x in f))).sum())
    parts += [f"{other} finished with a damaged record"] if other else []
    shown = f" ({'; '.join(parts)})" if parts else ""
    return f"Flagged runs, {len(flagged)} of {total}{shown}: " + "; ".join(items) + "."


def task_sentence(sweep: Sweep) -> str:
    """What the sweep's runs trained on: the task, for a dataset task its dataset and reward (issue 22)."""
    base = (sweep.meta.get("spec") or {}).get("base") or {}
    task = base.get("task", RunConfig.model_fields["task"].default)
    return f"Task: {describe_task(task, base.get('task_params') or {})}."


def summary(sweep: Sweep, comparison: Comparison) -> list[Block]:
    finished = sweep.finished
    scope = (f"From the local run store at `{sweep.folder}`: {len(sweep.trials)} trials, {len(sweep.runs)} runs, "
             f"{len(finished)} finished. Metric: {sweep.metric} at the final evaluation. An arm is one objective "
             "with one parameter setting; curves show every arm, histograms the baseline arm and each other objective's "
             "best arm. "
             + task_sentence(sweep))
    optional = (few_seeds_sentence(comparison), regime.warning(regime.sweep_profile(sweep)))
    items = [headline(sweep, comparison), *filter(None, optional), flagged_sentence(comparison, len(sweep.runs)),
             *comparison.notes]
    return [Heading("Summary"), Bullets(tuple(items)), Paragraph(scope), Paragraph(f"**Methods.** {methods(comparison.margin)}")]


def tables(sweep: Sweep, comparison: Comparison) -> list[Block]:
    def row(a: ArmResult) -> tuple[str, ...]:
        return (a.objective, a.arm, str(a.mean.seeds), _with_ci(a.mean), _with_ci(a.iqm),
                _with_ci(a.difference, signed=True), a.test.method if a.test else "—",
                f"{a.test.p:.3g}" if a.test else "—", f"{a.tost_p:.3g}" if a.tost_p is not None else "—",
                a.verdict or "—", _num(a.mde) if a.mde is not None else "—", _needed(a.seeds_for_margin))

    per_setting = len(comparison.baselines) > 1
    baseline = ("each setting's own " + ", ".join(comparison.baselines) if per_setting
                else comparison.baseline_arm or "none")
    blocks: list[Block] = [Heading("Results"), Paragraph(
        f"Final {sweep.metric} per arm over its finished seeds, highest mean first{' within each setting' * per_setting}"
        f". Baseline: {baseline}; equivalence margin ±{_num(comparison.margin)}. Test: paired t when the arm ran the "
        "baseline's seeds, else Welch (— where fewer than two seeds or no variance). Per-seed values: seeds.csv. "
        "Methods: see the note under the summary.")]
    for setting in dict.fromkeys(a.setting for a in comparison.arms):
        blocks += [Heading(f"Setting {setting}", 3)] if per_setting else []
        blocks.append(Table(RESULT_HEADERS, tuple(row(a) for a in comparison.arms if a.setting == setting)))
    fits = [(o, comparison.lead_arms[o], f) for o, f in comparison.fits.items() if f is not None]
    if fits:
        blocks += [Heading("Entropy–performance fit", 3), Paragraph(
            "R = −a·exp(H) + b over each objective's evaluation points (Cui et al., arXiv 2505.22617). "
            "Where a ≤ 0 (performance not rising as entropy falls) or R² is low, the runs do not follow the law "
            "and the ceiling is not a prediction."), Table(
            ("objective", "arm", "points", "a", "b", "predicted ceiling at H = 0 (b − a)", "R²"),
            tuple((o, arm, str(f.points), f"{f.a:.4g}", f"{f.b:.4g}", _num(f.ceiling), f"{f.r2:.2f}")
                  for o, arm, f in fits))]
    return blocks + stability(sweep) + token_regime(regime.sweep_profile(sweep))


def stability(sweep: Sweep) -> list[Block]:
    """Per arm: how many seeds collapsed (summary.json collapse_step) and the worst seed's final metric."""
    runs = sweep.finished
    if runs.empty or "stability_recorded" not in runs:
        return []
    rows = []
    for arm, group in runs.groupby("arm", sort=True):
        recorded = group[group["stability_recorded"].astype(bool)]
        collapsed = recorded["collapse_step"].notna()
        worst = group.loc[group["final"].idxmin()]
        steps = ", ".join(str(int(s)) for s in recorded.loc[collapsed, "collapse_step"])
        rows.append((str(arm), f"{int(collapsed.sum())}/{len(recorded)}" if len(recorded) else "not recorded",
                     steps or "—", _num(group["final"].mean()), f"{_num(worst['final'])} (seed {int(worst['seed'])})"))
    return [Heading("Stability", 3), Paragraph(
        "Seeds whose run collapsed: the 10-step moving average of reward/mean fell under half of its running peak "
        f"and stayed there to the end (the step it did so is listed). Beside the mean final {sweep.metric}, the "
        "worst seed's."), Table(("arm", "collapsed seeds", "collapse steps", f"mean {sweep.metric}",
                                 f"worst seed's {sweep.metric}"), tuple(rows))]


def token_regime(profile: regime.TokenProfile | None) -> list[Block]:
    """Per objective: the sampled tokens' rarity under μ early and late in training."""
    blocks: list[Block] = [Heading("Token regime", 3)]
    if profile is None:
        return blocks + [Paragraph("The token profile (`behaviour/frac_rare`, `behaviour/frac_very_rare`, "
                                   "`behaviour/median_prob`) was not logged by these runs: they were recorded before "
                                   "the trainer logged it, so this sweep's token regime is unknown.")]
    unlogged = f" {profile.unlogged} finished run(s) did not log it and are left out." if profile.unlogged else ""
    blocks.append(Paragraph(
        "How rare the sampled tokens were under the sampler μ, averaged over the first and the last tenth of each "
        "run's training steps, then over runs: ratio clips and divergence trust regions treat rare tokens (small μ) "
        f"differently and common ones alike. Over all {profile.runs} finished runs, {profile.frac_rare:.1%} of "
        f"sampled tokens had μ < 0.1.{unlogged}"))
    formats = {"behaviour/frac_rare": "{:.1%}", "behaviour/frac_very_rare": "{:.1%}", "behaviour/median_prob": "{:.3f}"}
    heads = {"behaviour/frac_rare": "μ < 0.1", "behaviour/frac_very_rare": "μ < 0.01", "behaviour/median_prob":
             "median μ"}
    metrics = [m for m in regime.PROFILE if f"{m} first" in profile.table]
    rows = tuple((str(objective), str(int(row["runs"])), *(
        f"{formats[m].format(row[f'{m} first'])} → {formats[m].format(row[f'{m} last'])}" for m in metrics))
        for objective, row in profile.table.iterrows())
    headers = ("objective", "runs", *(f"{heads[m]} (first → last tenth)" for m in metrics))
    return blocks + [Table(headers, rows)]


def appendix(sweep: Sweep, comparison: Comparison) -> list[Block]:
    blocks: list[Block] = [Heading("Trials")]
    trial_rows = tuple((str(t.trial), t.arm, t.state, "—" if pd.isna(t.value) else _num(t.value), str(t.seeds),
                        t.failure or "") for t in sweep.trials.sort_values("trial").itertuples())
    blocks.append(Table(("trial", "arm", "state", "value", "seeds", "failure"), trial_rows))
    if not comparison.flagged.empty:
        blocks.append(Heading("Flagged runs"))
        blocks.append(Table(("run", "objective", "seed", "status", "flags", "failure"), tuple(
            (r.run, r.objective, str(r.seed), r.status, ", ".join(r.flags) or "—", r.failure or "")
            for r in comparison.flagged.itertuples())))
    return blocks


def results_frame(comparison: Comparison) -> pd.DataFrame:
    """The results table at full precision (results.csv), for scripts and for checking the report."""
    rows = []
    for a in comparison.arms:
        row = {"objective": a.objective, "arm": a.arm, "setting": a.setting, "baseline": a.baseline,
               "seeds": a.mean.seeds}
        for key, e in (("mean", a.mean), ("iqm", a.iqm), ("diff", a.difference), ("p_improve", a.improvement)):
            row.update({key: e.value, f"{key}_low": e.low, f"{key}_high": e.high} if e else {})
        row["test"] = a.test.method if a.test else None
        row["p"] = a.test.p if a.test else None
        row["wilcoxon_p"] = a.test.wilcoxon_p if a.test else None
        row["tost_p"] = a.tost_p
        row["margin"] = comparison.margin if a.verdict else None
        row["verdict"] = a.verdict
        row["mde"] = a.mde
        row["seeds_for_margin"] = a.seeds_for_margin
        rows.append(row)
    return pd.DataFrame(rows)
