"""The words and tables of a report: the summary a reader sees first, the results table, flagged runs."""

from __future__ import annotations

import pandas as pd

from .. import verdicts
from . import regime, stats
from .compare import ArmResult, Comparison
from .document import Block, Bullets, Heading, Paragraph, Table
from .load import Sweep
from ..config import RunConfig
from ..tasks import describe_task

RESULT_HEADERS = ("objective", "arm", "seeds", "mean [95% CI]", "IQM [95% CI]", "Δ vs baseline [95% CI]", "test",
                  "p", "TOST p", "family", "p adjusted", "TOST p adjusted", "verdict", "MDE, 80% power (planning)",
                  "seeds for the margin (planning)")
MULTIPLICITY_NAMES = {"holm": "Holm's step-down", "bh": "Benjamini–Hochberg's false discovery rate",
                      "none": "no adjustment"}
FEW_SEEDS = 5


def margin_phrase(comparison: Comparison) -> str:
    """'±0.020' or '±10% of the baseline's mean'."""
    plan = comparison.plan
    return f"±{plan.margin:.0%} of the baseline's mean" if plan.relative_margin else f"±{_num(comparison.margin)}"


def methods(comparison: Comparison) -> str:
    plan = comparison.plan
    looks = plan.sizes
    sequential = (f"Seeds were added in looks at {', '.join(map(str, looks))} seeds per arm: after each, every "
                  "declared comparison was tested, and only the arms still unresolved (and their baselines) got more. "
                  f"The error rate is held across the looks by an {verdicts.BOUNDARY}: at look k of K the test must "
                  "cross a bound that shrinks as √(n_K/n_k), so a verdict at an early look needs far stronger "
                  "evidence; every p below is that look's repeated p-value. ") if len(looks) > 1 else ""
    adjustment = MULTIPLICITY_NAMES[plan.multiplicity]
    return ("Intervals are 95% over seeds (a seed is the unit, never a step): Student's t for an arm's mean. The "
            "difference from the baseline is paired by seed on the seeds both arms ran (they share the seed's first "
            "batches and evaluation prompts; paired t, and from "
            f"{stats.WILCOXON_MIN_PAIRS} pairs Wilcoxon's signed-rank p beside it); arms that share fewer than two "
            "seeds get Welch's interval and no verdict. "
            f"Equivalence: two one-sided tests (TOST) against the margin {margin_phrase(comparison)} of the metric, "
            "fixed in the sweep file (equivalence_margin) before the runs. " + sequential +
            f"Multiplicity: the p-values of the comparisons in one family (declared in the sweep file before the "
            f"runs) are adjusted together by {adjustment}; the interval and the p beside it are unadjusted, the "
            "verdict reads the adjusted values. Verdicts, the only words the summary uses: **better** or **worse** "
            "when the adjusted difference p < 0.05; **matches** when the adjusted TOST p < 0.05; both at once is "
            "**better, within margin** or **worse, within margin** (a real difference inside the margin); else "
            "**not resolved** (a difference that is not significant is not shown to be absent). Planning figures, "
            "not findings: the minimum detectable effect (MDE) is the smallest true "
            "difference a two-sided test at α = 0.05 on these seeds detects with 80% power at the observed spread; "
            "seeds for the margin is how many seeds per arm TOST would need to show \"matches\" with 80% power if "
            "the true difference were 0 (both unadjusted). Newcombe's score interval for P(beats baseline) "
            f"(results.csv); a BCa bootstrap for the IQM from {stats.IQM_MIN_SEEDS} seeds up only ({stats.REPS} "
            "resamples; with fewer seeds it is too narrow, so the IQM is given alone). No interval is given from one "
            "seed or from seeds that all scored the same.")


def error_control(comparison: Comparison) -> str:
    """The report's first words on what its verdicts control: the families, the adjustment, the looks."""
    plan = comparison.plan
    families: dict[str, int] = {}
    for a in comparison.arms:
        if a.family is not None:
            families[a.family] = families.get(a.family, 0) + 1
    where = "declared in the sweep file" if comparison.declared else "one family (the sweep declares none)"
    listed = ", ".join(f"{name} ({n} comparison{'s' * (n != 1)})" for name, n in families.items())
    if plan.multiplicity == "none":
        control = ("**No multiplicity adjustment** (multiplicity: none in the sweep file): each verdict is tested at "
                   "α = 0.05 on its own, so across many comparisons some verdicts are expected to be wrong by chance")
    else:
        control = (f"Verdicts are adjusted for multiplicity within each family by {MULTIPLICITY_NAMES[plan.multiplicity]}"
                   f" ({'family-wise error' if plan.multiplicity == 'holm' else 'false discovery rate'} ≤ 5% per family)")
    looks = ""
    if len(plan.sizes) > 1:
        looks = (f"; seeds were added in looks at {', '.join(map(str, plan.sizes))} per arm until each comparison was "
                 f"resolved, with an {verdicts.BOUNDARY} holding the error rate across looks")
        caps = [f"{name} stops at {cap}" for name, cap in plan.family_max.items()]
        looks += f" ({'; '.join(caps)})" if caps else ""
    return f"{control}. Families, {where}: {listed or 'none'}{looks}."


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


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


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
                   f"{_ci_phrase(base.mean)}, {_seeds(base.mean.seeds)}{named}), margin {margin_phrase(comparison)}: ")
        others = [a for a in arms if a.baseline == base.arm]
        parts.append(opening + ("; ".join(verdict_clause(a) for a in others) if others else
                                "it is the only arm with finished runs, so there is nothing to compare it with") + ".")
    return " ".join(parts)


def verdict_clause(a: ArmResult) -> str:
    """'drpo **matches** (Δ −0.001, 95% CI [−0.012, 0.010], 10 paired seeds, paired t p = 0.81, adjusted 1; TOST
    p = 0.004, adjusted 0.012)'."""
    if a.test is None:
        why = a.difference.why if a.difference is not None else "no test"
        return (f"{a.arm} **{a.verdict or 'not resolved'}** (mean {_num(a.mean.value)}, {_ci_phrase(a.mean)}; "
                f"no test: {why})")
    t = a.test
    wilcoxon = f", Wilcoxon p = {t.wilcoxon_p:.3g}" if t.wilcoxon_p is not None else ""
    adjusted = f", adjusted {a.p_adjusted:.3g}" if a.p_adjusted is not None else ""
    tost = f"TOST p = {a.tost_p:.3g}" if a.tost_p is not None else "no TOST"
    tost += f", adjusted {a.tost_p_adjusted:.3g}" if a.tost_p is not None and a.tost_p_adjusted is not None else ""
    planning = f"; MDE {_num(a.mde)}" if a.mde is not None else ""
    seeds = f"{t.difference.seeds} paired seeds, " if t.method == "paired t" else ""
    stopped = f"; {_stop_phrase(a)}" if a.stop else ""
    return (f"{a.arm} **{a.verdict}** (Δ {_num(t.difference.value, signed=True)}, {_ci_phrase(t.difference)}, "
            f"{seeds}{t.method} p = {t.p:.3g}{wilcoxon}{adjusted}; {tost}{planning}{stopped})")


def _stop_phrase(a: ArmResult) -> str:
    """Why the comparison got no more seeds: at which look it was resolved, or that it reached the cap."""
    if a.stop == "resolved":
        return f"resolved at look {a.look}"
    if a.stop == "max reached":
        return f"not resolved at its last look ({a.compared} seeds)"
    return f"still running (look {a.look})"


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
    base = sweep.spec.base
    task = base.get("task", RunConfig.model_fields["task"].default)
    return f"Task: {describe_task(task, base.get('task_params') or {})}."


def summary(sweep: Sweep, comparison: Comparison) -> list[Block]:
    finished = sweep.finished
    scope = (f"From the local run store at `{sweep.folder}`: {len(sweep.trials)} trials, {len(sweep.runs)} runs, "
             f"{len(finished)} finished. Metric: {sweep.metric} at the final evaluation. An arm is one objective "
             "with one parameter setting; curves show every arm, histograms the baseline arm and, for each other "
             "objective, its arm with the highest mean (which arm is drawn, not a finding: arms are compared only in "
             "the tests above). "
             + task_sentence(sweep))
    optional = (few_seeds_sentence(comparison), outlier_sentence(comparison),
                regime.warning(regime.sweep_profile(sweep)))
    collapsed, failed, runs = failure_counts(sweep)
    stability_line = (f"Stability: {collapsed} of {runs} finished runs collapsed and {failed} failed to learn (ended "
                      "below their own untrained policy's metric); per arm in the Stability table.")
    items = [headline(sweep, comparison), *filter(None, optional), stability_line,
             flagged_sentence(comparison, len(sweep.runs)), *comparison.notes]
    return [Heading("Summary"), Paragraph(error_control(comparison)), Bullets(tuple(items)), Paragraph(scope),
            Paragraph(f"**Methods.** {methods(comparison)}")]


def tables(sweep: Sweep, comparison: Comparison) -> list[Block]:
    def row(a: ArmResult) -> tuple[str, ...]:
        return (a.objective, a.arm, str(a.mean.seeds), _with_ci(a.mean), _with_ci(a.iqm),
                _with_ci(a.difference, signed=True), a.test.method if a.test else "—",
                f"{a.test.p:.3g}" if a.test else "—", f"{a.tost_p:.3g}" if a.tost_p is not None else "—",
                a.family or "—", _p(a.p_adjusted if a.test else None), _p(a.tost_p_adjusted if a.tost_p is not None
                                                                         else None),
                a.verdict or "—", _num(a.mde) if a.mde is not None else "—", _needed(a.seeds_for_margin))

    per_setting = len(comparison.baselines) > 1
    baseline = ("each setting's own " + ", ".join(comparison.baselines) if per_setting
                else comparison.baseline_arm or "none")
    blocks: list[Block] = [Heading("Results"), Paragraph(
        f"Final {sweep.metric} per arm over its finished seeds, highest mean first{' within each setting' * per_setting}"
        f". Baseline: {baseline}; equivalence margin {margin_phrase(comparison)}. Test: paired t on the seeds the arm "
        "and the baseline both ran, else Welch (— where fewer than two seeds or no variance); p and TOST p "
        "unadjusted, their adjusted values (across looks and within the family) beside them, which the verdict "
        "reads. Per-seed values: seeds.csv. Methods: see the note under the summary.")]
    for setting in dict.fromkeys(a.setting for a in comparison.arms):
        blocks += [Heading(f"Setting {setting}", 3)] if per_setting else []
        blocks.append(Table(RESULT_HEADERS, tuple(row(a) for a in comparison.arms if a.setting == setting)))
    blocks += looks_section(comparison) + outlier_section(comparison)
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


def looks_section(comparison: Comparison) -> list[Block]:
    """A sweep in looks: the boundary at each look, and per comparison its family, the seeds its verdict was tested
    on and why it got no more."""
    plan = comparison.plan
    if len(plan.sizes) < 2:
        return []
    rows = []
    for family in dict.fromkeys(a.family for a in comparison.arms if a.family):
        looks = plan.looks(family)
        fractions = [n / looks[-1] for n in looks]
        two = verdicts.boundary(fractions)
        one = verdicts.boundary(fractions, two_sided=False)
        rows += [(family, str(k), str(n), f"{p:.2g}", f"{q:.2g}") for k, (n, p, q) in enumerate(zip(looks, two, one), 1)]
    compared = tuple((a.family or "—", a.arm, a.baseline or "—", str(a.look or "—"), str(a.compared or "—"),
                      a.verdict or "—", _stop_phrase(a) if a.stop else "—") for a in comparison.arms if a.baseline)
    return [Heading("Looks", 3), Paragraph(
        f"Seeds were added in looks ({', '.join(map(str, plan.sizes))} per arm). The {verdicts.BOUNDARY} holds the "
        "error rate at 5% over all looks: before adjusting for the family, a comparison is resolved at look k only "
        "when its fixed-n p-value is below the nominal level in the first table (the difference's two-sided p; each "
        "one-sided p of TOST). Each comparison's seeds and why it stopped are in the second."),
        Table(("family", "look", "seeds per arm", "nominal p, difference", "nominal p, each side of TOST"),
              tuple(rows)),
        Table(("family", "arm", "baseline", "look", "paired seeds", "verdict", "why it stopped"), compared)]


def outlier_phrase(check: verdicts.LeaveOneOut) -> str:
    """A resolved verdict's leave-one-out check in words (the report's table, verdicts.md)."""
    worst = f"without seed {check.seed}: {check.verdict}, adjusted p {check.p:.3g}"
    if check.survives:
        return f"holds without any one of the {check.tried} seed pairs (closest {worst})"
    return f"changes without {check.changed} of the {check.tried} seed pairs ({worst})"


def outlier_sentence(comparison: Comparison) -> str | None:
    """The summary's count of resolved verdicts that rest on one seed pair."""
    checked = [a for a in comparison.arms if a.outlier]
    if not checked:
        return None
    fragile = [f"{a.arm} ({a.verdict}; {outlier_phrase(a.outlier)})" for a in checked if not a.outlier.survives]
    held = f"{len(checked) - len(fragile)} of {len(checked)} resolved verdicts hold with any one seed pair left out"
    return f"Outliers: {held}" + (f"; these do not: {'; '.join(fragile)}." if fragile else ".")


def outlier_section(comparison: Comparison) -> list[Block]:
    """Each resolved verdict decided again without each of its seed pairs in turn (verdicts.leave_one_out)."""
    checked = [a for a in comparison.arms if a.outlier]
    if not checked:
        return []
    return [Heading("Outlier check", 3), Paragraph(
        "Each resolved verdict decided again with one of its paired seeds left out, for each seed in turn (same "
        "looks, family and adjustment; the other comparisons keep all their seeds). Where a verdict changes, it "
        "rests on that seed; the adjusted p given is the one the original verdict needs below 0.05."), Table(
        ("family", "arm", "baseline", "verdict", "paired seeds", "leave one seed pair out"),
        tuple((a.family or "—", a.arm, a.baseline or "—", a.verdict or "—", str(a.compared or "—"),
               outlier_phrase(a.outlier)) for a in checked))]


def stability(sweep: Sweep) -> list[Block]:
    """Per arm: how many seeds collapsed (summary.json collapse_step), how many failed to learn (ended below their
    own untrained policy's metric) and the worst seed's final metric."""
    runs = sweep.finished
    if runs.empty or "stability_recorded" not in runs:
        return []
    rows = []
    for arm, group in runs.groupby("arm", sort=True):
        recorded = group[group["stability_recorded"].astype(bool)]
        collapsed = recorded["collapse_step"].notna()
        worst = group.loc[group["final"].idxmin()]
        steps = ", ".join(str(int(s)) for s in recorded.loc[collapsed, "collapse_step"])
        failed = group["failed_to_learn"].astype(bool) if "failed_to_learn" in group else None
        failed_seeds = ", ".join(str(int(s)) for s in group.loc[failed, "seed"]) if failed is not None else ""
        rows.append((str(arm), f"{int(collapsed.sum())}/{len(recorded)}" if len(recorded) else "not recorded",
                     steps or "—", f"{int(failed.sum())}/{len(group)}" if failed is not None else "not recorded",
                     failed_seeds or "—", _num(group["final"].mean()),
                     f"{_num(worst['final'])} (seed {int(worst['seed'])})"))
    return [Heading("Stability", 3), Paragraph(
        "Seeds whose run collapsed: the 10-step moving average of reward/mean fell under half of its running peak "
        f"and stayed there to the end (the step it did so is listed). Seeds that failed to learn: the final "
        f"{sweep.metric} is below the same run's untrained policy's (its base). Beside the mean final "
        f"{sweep.metric}, the worst seed's."), Table(
        ("arm", "collapsed seeds", "collapse steps", "failed to learn", "seeds that failed", f"mean {sweep.metric}",
         f"worst seed's {sweep.metric}"), tuple(rows))]


def failure_counts(sweep: Sweep) -> tuple[int, int, int]:
    """(collapsed, failed to learn, finished) runs of the sweep: the Stability table's totals for the summary."""
    runs = sweep.finished
    collapsed = int(runs["collapse_step"].notna().sum()) if "collapse_step" in runs else 0
    failed = int(runs["failed_to_learn"].astype(bool).sum()) if "failed_to_learn" in runs else 0
    return collapsed, failed, len(runs)


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


OUTLIER_COLUMNS = ("loo_tried", "loo_changed", "loo_seed", "loo_verdict", "loo_p")


def outlier_columns(check: verdicts.LeaveOneOut | None) -> dict[str, object]:
    """results.csv's leave-one-out columns (empty for a verdict not resolved)."""
    values = (check.tried, check.changed, check.seed, check.verdict, check.p) if check else (None,) * 5
    return dict(zip(OUTLIER_COLUMNS, values))


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
        row["margin"] = a.margin
        row["family"] = a.family
        row["p_adjusted"] = a.p_adjusted if a.test else None
        row["tost_p_adjusted"] = a.tost_p_adjusted if a.tost_p is not None else None
        row["look"] = a.look
        row["compared_seeds"] = a.compared
        row["stop"] = a.stop
        row["verdict"] = a.verdict
        row.update(outlier_columns(a.outlier))
        row["mde"] = a.mde
        row["seeds_for_margin"] = a.seeds_for_margin
        rows.append(row)
    return pd.DataFrame(rows)
