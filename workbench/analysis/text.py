"""The words and tables of a report: the summary a reader sees first, the results table, flagged runs."""

from __future__ import annotations

import pandas as pd

from . import stats
from .compare import ArmResult, Comparison
from .document import Block, Bullets, Heading, Paragraph, Table
from .load import Sweep

RESULT_HEADERS = ("objective", "arm", "seeds", "mean [95% CI]", "IQM [95% CI]", "Δ mean vs baseline [95% CI]",
                  "P(beats baseline) [95% CI]", "Welch p")


def _num(x: float) -> str:
    return f"{x:.3f}"


def _ci(e: stats.Estimate) -> str:
    return f"[{_num(e.low)}, {_num(e.high)}]"


def _with_ci(e: stats.Estimate | None, signed: bool = False) -> str:
    if e is None:
        return "—"
    return f"{e.value:+.3f} {_ci(e)}" if signed else f"{_num(e.value)} {_ci(e)}"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


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
                f"(95% CI {_ci(win.mean)}, {_seeds(win.mean.seeds)}). " + _after_tie(arms, len(tied)))
    won = (f"**{win.arm}** has the best {metric}: mean {_num(win.mean.value)} (95% CI {_ci(win.mean)}, "
           f"{_seeds(win.mean.seeds)})")
    if len(arms) == 1:
        return won + "; it is the only arm with finished runs, so there is nothing to compare it with."
    if comparison.baseline_arm is None:
        second = arms[1]
        return (won + f", {win.mean.value - second.mean.value:+.3f} ahead of {second.arm} (mean "
                f"{_num(second.mean.value)}, 95% CI {_ci(second.mean)}, {_seeds(second.mean.seeds)}). "
                "There is no baseline, so no difference interval is given.")
    base = comparison.result(comparison.baseline_arm)
    if win.arm == base.arm:
        rival = arms[1]
        return (f"The baseline **{base.arm}** has the best {metric}: mean {_num(base.mean.value)} (95% CI "
                f"{_ci(base.mean)}, {_seeds(base.mean.seeds)}); the best other arm, {rival.arm}, is "
                f"{-rival.difference.value:.3f} behind (95% CI of its difference {_ci(rival.difference)}, "
                f"{_seeds(rival.mean.seeds)}). " + _separable(rival))
    sentence = (won + f", {win.difference.value:+.3f} against the baseline {base.arm} (mean {_num(base.mean.value)}, "
                f"{_seeds(base.mean.seeds)}; 95% CI of the difference {_ci(win.difference)}). "
                f"P(a seed of it beats a seed of the baseline) = {_num(win.improvement.value)} "
                f"(95% CI {_ci(win.improvement)})")
    welch = f"; Welch t-test p = {win.welch.p:.3g}. " if win.welch else ". "
    return sentence + welch + _separable(win)


def _after_tie(arms: list[ArmResult], tied: int) -> str:
    if tied == len(arms):
        return "Every arm has the same mean."
    nxt = arms[tied]
    return f"The next best, {nxt.arm}, has mean {_num(nxt.mean.value)} (95% CI {_ci(nxt.mean)})."


def _separable(result: ArmResult) -> str:
    d = result.difference
    if d.low <= 0 <= d.high:
        return "The interval of the difference contains 0: at this many seeds the sweep cannot tell the two apart."
    return "The interval of the difference excludes 0."


def flagged_sentence(comparison: Comparison, total: int) -> str:
    flagged = comparison.flagged
    if flagged.empty:
        return f"No run was flagged ({total} runs: none failed, was pruned or had zero shift)."
    items = [f"{r.run} ({r.objective}, seed {r.seed}): {', '.join([r.status] * (r.status != 'finished') + r.flags)}"
             for r in flagged.itertuples()]
    counts = flagged["status"].value_counts()
    zero = int(flagged["flags"].map(lambda f: "zero_shift" in f).sum())
    parts = [f"{int(counts.get(s, 0))} {s}" for s in ("failed", "pruned", "running", "unreadable", "missing")
             if counts.get(s, 0)]
    parts += [f"{zero} with zero shift (μ = π on every token, so the objectives could not differ)"] if zero else []
    return f"Flagged runs, {len(flagged)} of {total} ({'; '.join(parts)}): " + "; ".join(items) + "."


def summary(sweep: Sweep, comparison: Comparison) -> list[Block]:
    finished = sweep.finished
    scope = (f"From the local run store at `{sweep.folder}`: {len(sweep.trials)} trials, {len(sweep.runs)} runs, "
             f"{len(finished)} finished. Metric: {sweep.metric} at the final evaluation. Intervals are 95% stratified "
             f"bootstrap intervals with seeds as the resampling unit ({stats.REPS} resamples). An arm is one "
             "objective with one parameter setting; curves show each objective's best arm.")
    items = [headline(sweep, comparison), flagged_sentence(comparison, len(sweep.runs)), *comparison.notes]
    return [Heading("Summary"), Bullets(tuple(items)), Paragraph(scope)]


def tables(sweep: Sweep, comparison: Comparison) -> list[Block]:
    rows = tuple((a.objective, a.arm, str(a.mean.seeds), _with_ci(a.mean), _with_ci(a.iqm),
                  _with_ci(a.difference, signed=True), _with_ci(a.improvement),
                  f"{a.welch.p:.3g}" if a.welch else "—") for a in comparison.arms)
    blocks: list[Block] = [Heading("Results"), Paragraph(
        f"Final {sweep.metric} per arm over its finished seeds, best mean first. Baseline: "
        f"{comparison.baseline_arm or 'none'}. Welch p: two-sided unequal-variance t-test against the baseline "
        "(— where fewer than two seeds or no variance)."), Table(RESULT_HEADERS, rows)]
    fits = [(o, comparison.lead_arms[o], f) for o, f in comparison.fits.items() if f is not None]
    if fits:
        blocks += [Heading("Entropy–performance fit", 3), Paragraph(
            "R = −a·exp(H) + b over each objective's evaluation points (Cui et al., arXiv 2505.22617). "
            "Where a ≤ 0 (performance not rising as entropy falls) or R² is low, the runs do not follow the law "
            "and the ceiling is not a prediction."), Table(
            ("objective", "arm", "points", "a", "b", "predicted ceiling at H = 0 (b − a)", "R²"),
            tuple((o, arm, str(f.points), f"{f.a:.4g}", f"{f.b:.4g}", _num(f.ceiling), f"{f.r2:.2f}")
                  for o, arm, f in fits))]
    return blocks


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
        rows.append(row)
    return pd.DataFrame(rows)
