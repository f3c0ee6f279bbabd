"""The words and tables of a report: the summary a reader sees first, the results table, flagged runs."""

from __future__ import annotations

import pandas as pd

from . import regime, stats
from .compare import ArmResult, Comparison
from .document import Block, Bullets, Heading, Paragraph, Table
from .load import Sweep
from ..config import RunConfig
from ..tasks import describe_task

RESULT_HEADERS = ("objective", "arm", "seeds", "mean [95% CI]", "IQM [95% CI]", "Δ mean vs baseline [95% CI]",
                  "P(beats baseline) [95% CI]", "Welch p", "seeds for 80% power")
FEW_SEEDS = 5
METHODS = ("Intervals are 95% over seeds (a seed is the unit, never a step): Student's t for an arm's mean and "
           "Welch's for its difference from the baseline, the same Welch test that gives p, so an interval excludes 0 "
           "exactly when p < 0.05 (t intervals hold for normal seed scores at any number of seeds, where a "
           "bootstrap over 3 seeds is far too narrow; simulated, Welch's covers 94–97% at 3 seeds per arm); "
           "Newcombe's score interval for P(beats baseline), which stays wide when every seed pair agrees "
           "(simulated coverage 90–97% at 3 seeds per arm, 94–97% from 5); a BCa "
           f"bootstrap for the IQM from {stats.IQM_MIN_SEEDS} seeds up only ({stats.REPS} resamples; with fewer "
           "seeds it is too narrow, so the IQM is given alone). No interval is given from one seed or from seeds "
           "that all scored the same. Seeds for 80% power: seeds per arm at which a two-sided Welch test at α = 0.05 "
           "would resolve the observed difference, taking the observed means and spreads as true.")


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
    """Who won, by how much, with what interval, over how many seeds."""
    metric = f"final `{sweep.metric}`"
    arms = comparison.arms
    if not arms:
        return "No run of this sweep has finished yet: there is nothing to compare."
    win = arms[0]
    tied = [a.arm for a in arms if a.mean.value == win.mean.value]
    if len(tied) > 1:
        return (f"No arm is ahead: {', '.join(tied)} tie at mean {metric} {_num(win.mean.value)} "
                f"({_ci_phrase(win.mean)}, {_seeds(win.mean.seeds)}). " + _after_tie(arms, len(tied)))
    won = (f"**{win.arm}** has the best {metric}: mean {_num(win.mean.value)} ({_ci_phrase(win.mean)}, "
           f"{_seeds(win.mean.seeds)})")
    if len(arms) == 1:
        return won + "; it is the only arm with finished runs, so there is nothing to compare it with."
    if comparison.baseline_arm is None:
        second = arms[1]
        return (won + f", {_num(win.mean.value - second.mean.value, signed=True)} ahead of {second.arm} (mean "
                f"{_num(second.mean.value)}, {_ci_phrase(second.mean)}, {_seeds(second.mean.seeds)}). "
                "There is no baseline, so no difference interval is given.")
    base = comparison.result(comparison.baseline_arm)
    if win.arm == base.arm:
        rival = arms[1]
        return (f"The baseline **{base.arm}** has the best {metric}: mean {_num(base.mean.value)} "
                f"({_ci_phrase(base.mean)}, {_seeds(base.mean.seeds)}); the best other arm, {rival.arm}, is "
                f"{_num(-rival.difference.value)} behind ({_ci_phrase(rival.difference)} for the difference, "
                f"{_seeds(rival.mean.seeds)}). " + _separable(rival))
    return (won + f", {_num(win.difference.value, signed=True)} against the baseline {base.arm} (mean {_num(base.mean.value)}, "
            f"{_seeds(base.mean.seeds)}; {_ci_phrase(win.difference)} for the difference). "
            f"P(a seed of it beats a seed of the baseline) = {_num(win.improvement.value)} "
            f"({_ci_phrase(win.improvement)}). " + _separable(win))


def _after_tie(arms: list[ArmResult], tied: int) -> str:
    if tied == len(arms):
        return "Every arm has the same mean."
    nxt = arms[tied]
    return f"The next best, {nxt.arm}, has mean {_num(nxt.mean.value)} (95% CI {_ci(nxt.mean)})."


def _separable(result: ArmResult) -> str:
    """Whether the difference is resolved, decided by Welch's p alone (its interval is the same test's)."""
    welch = result.welch
    if welch is None:
        return f"No Welch test ({result.difference.why}): the sweep cannot say whether the two differ."
    if welch.p < stats.ALPHA:
        return (f"Welch's t-test resolves the difference (p = {welch.p:.3g} < {stats.ALPHA}; its 95% interval "
                "excludes 0).")
    need = result.seeds_needed
    sentence = (f"Welch's t-test does not resolve the difference (p = {welch.p:.3g} ≥ {stats.ALPHA}; its 95% "
                "interval contains 0): at this many seeds the sweep cannot tell the two apart")
    if need == float("inf"):
        return sentence + f"; a difference this small would need more than {stats.MAX_SEEDS:,} seeds per arm."
    if need is not None:
        return (sentence + f"; a difference this size would need about {need:,.0f} seeds per arm to resolve "
                "(80% power, α = 0.05, observed spreads).")
    return sentence + "."


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
             "with one parameter setting; curves show each objective's best arm. " + task_sentence(sweep))
    optional = (few_seeds_sentence(comparison), regime.warning(regime.sweep_profile(sweep)))
    items = [headline(sweep, comparison), *filter(None, optional), flagged_sentence(comparison, len(sweep.runs)),
             *comparison.notes]
    return [Heading("Summary"), Bullets(tuple(items)), Paragraph(scope), Paragraph(f"**Methods.** {METHODS}")]


def tables(sweep: Sweep, comparison: Comparison) -> list[Block]:
    rows = tuple((a.objective, a.arm, str(a.mean.seeds), _with_ci(a.mean), _with_ci(a.iqm),
                  _with_ci(a.difference, signed=True), _with_ci(a.improvement),
                  f"{a.welch.p:.3g}" if a.welch else "—", _needed(a.seeds_needed)) for a in comparison.arms)
    blocks: list[Block] = [Heading("Results"), Paragraph(
        f"Final {sweep.metric} per arm over its finished seeds, best mean first. Baseline: "
        f"{comparison.baseline_arm or 'none'}. Welch p: two-sided unequal-variance t-test against the baseline "
        "(— where fewer than two seeds or no variance). Methods: see the note under the summary."),
        Table(RESULT_HEADERS, rows)]
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
        row = {"objective": a.objective, "arm": a.arm, "seeds": a.mean.seeds}
        for key, e in (("mean", a.mean), ("iqm", a.iqm), ("diff", a.difference), ("p_improve", a.improvement)):
            row.update({key: e.value, f"{key}_low": e.low, f"{key}_high": e.high} if e else {})
        row["welch_p"] = a.welch.p if a.welch else None
        row["seeds_needed"] = a.seeds_needed
        rows.append(row)
    return pd.DataFrame(rows)
