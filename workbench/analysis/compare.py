"""The comparison a report states: per-arm estimates over seeds, the baseline, the winner, flagged runs.

Everything here is a value computed from :class:`~workbench.analysis.load.Sweep`; one numpy
Generator, seeded by the caller, is consumed in a fixed order so two builds agree to the last digit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .. import verdicts
from ..config import ConfigError
from ..sweeps.looks import verdict_plan
from ..sweeps.plan import IMPLICIT_FAMILY, plan as declared_comparisons
from . import stats
from .load import SYMBOLS, Sweep, format_setting, hashable, seed_scores

FLAGGED_STATUSES = ("failed", "pruned", "running", "interrupted")


@dataclass
class ArmResult:
    arm: str
    objective: str
    mean: stats.Estimate
    iqm: stats.Estimate
    seeds: tuple[int, ...] = ()  # the seeds its finished runs ran (empty when unknown)
    # Against the baseline arm (None for the baseline itself, or when there is no baseline).
    difference: stats.Estimate | None = None  # the test's 95% interval: it excludes 0 exactly when test.p < 0.05
    improvement: stats.Estimate | None = None
    test: stats.Difference | None = None  # paired t on the seeds both ran (Welch only when they share fewer than 2)
    tost_p: float | None = None  # equivalence within ± the margin, unadjusted
    verdict: str | None = None  # one of verdicts.VERDICTS, from the adjusted p-values
    mde: float | None = None  # planning: smallest difference these seeds detect with 80 % power
    seeds_for_margin: float | None = None  # planning: seeds per arm for TOST to show "matches" at a true 0
    baseline: str | None = None  # the arm it was compared with (its own setting's, for a per-setting baseline)
    setting: str = ""  # the sweep's space: fields that set its setting apart ('' when the sweep has one setting)
    family: str | None = None  # the family its p-values were adjusted in
    p_adjusted: float | None = None  # the difference's p across looks (repeated p) and adjusted within the family
    tost_p_adjusted: float | None = None
    look: int | None = None  # the look its verdict comes from (1-based)
    compared: int | None = None  # the paired seeds the verdict was tested on
    margin: float | None = None  # the equivalence margin it was tested against (absolute)
    stop: str | None = None  # verdicts.STOPS: why it got no more seeds
    outlier: verdicts.LeaveOneOut | None = None  # a resolved verdict decided again without each seed pair in turn


@dataclass
class Comparison:
    baselines: tuple[str, ...]  # the baseline arm, or one per setting (empty: no baseline)
    arms: list[ArmResult]  # per setting, best mean first
    lead_arms: dict[str, str]  # objective → the arm its curves show (the baseline arm for its objective)
    fits: dict[str, stats.EntropyFit | None]
    flagged: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    margin: float = verdicts.MARGIN  # absolute, or the fraction of the baseline's mean when ``plan.relative_margin``
    baseline_source: str = ""  # how the baseline was named: "--baseline", "the sweep file", "the default"
    plan: verdicts.Plan = field(default_factory=lambda: verdicts.Plan((), (0,)))
    declared: bool = False  # families and looks from the sweep file (sweeps.plan); else one family, one look

    def result(self, arm: str) -> ArmResult:
        return next(a for a in self.arms if a.arm == arm)

    @property
    def baseline_arm(self) -> str | None:
        """The one baseline arm; None when there is none or one per setting."""
        return self.baselines[0] if len(self.baselines) == 1 else None


def choose_baseline(sweep: Sweep, baseline: str | None) -> tuple[tuple[str, ...], str]:
    """(baseline arms, who named them). The baseline is named, never picked from the results: ``--baseline``,
    else the sweep file's ``baseline:``, else grpo when the sweep has exactly one grpo arm. A name is an arm's
    label, an objective with one arm, or the objective with its parameters ``'drpo delta=0.15'``. When the sweep's ``space:`` sets the
    arms in several settings (e.g. rollout_precision × num_iterations), a name that fits one arm per setting
    names a baseline per setting: every arm is compared with the baseline of its own setting (a bare objective
    then means its arms without a correction). A name that fits several arms otherwise, or none, is a one-line
    error listing the arms."""
    source = "--baseline"
    if baseline is None:
        baseline, source = sweep.spec.baseline, "the sweep file's baseline:"
    trials = sweep.trials.dropna(subset=["objective"])
    arms = sorted(trials["arm"].unique())
    if baseline is None:
        grpo = sorted(trials.loc[trials["objective"] == "grpo", "arm"].unique())
        return ((grpo[0],), "the default (grpo, the sweep names no baseline)") if len(grpo) == 1 else ((), "")
    listing = "; ".join(arms) or "none yet"
    if baseline in arms:
        return (baseline,), source
    objective, *setting = baseline.split()
    rows = trials[trials["objective"] == objective]
    if rows.empty:
        raise ConfigError(f"baseline {baseline!r} ({source}): not an arm of sweep {sweep.name!r} (arms: {listing})")
    for pair in setting:
        key, sep, value = pair.partition("=")
        key = next((k for k, symbol in SYMBOLS.items() if symbol == key), key)
        if not sep or key not in rows:
            raise ConfigError(f"baseline {baseline!r} ({source}): expected 'objective key=value ...' with keys the "
                              f"sweep varies (arms: {listing})")
        rows = rows[rows[key].map(lambda v: _same(v, value))]
    found = sorted(rows["arm"].unique())
    if len(found) == 1:
        return (found[0],), source
    if not found:
        raise ConfigError(f"baseline {baseline!r} ({source}): no arm has that setting (arms: {listing})")
    per_setting = _one_per_setting(sweep, rows, bare="correction" not in {p.partition("=")[0] for p in setting})
    if per_setting:
        return per_setting, source
    raise ConfigError(f"baseline {baseline!r} ({source}): {len(found)} arms fit, name one with its setting, "
                      f"e.g. '{objective} key=value' (arms: {'; '.join(found)})")


def setting_keys(sweep: Sweep) -> list[str]:
    """The sweep file's ``space:`` fields (RunConfig fields searched for every objective): they set the settings."""
    return [k for k in sweep.params if k in sweep.spec.space and k in sweep.trials]  # the order the trials set them


def _one_per_setting(sweep: Sweep, rows: pd.DataFrame, bare: bool) -> tuple[str, ...]:
    """The arms of ``rows`` when they are one per setting of the sweep's space (after leaving out the arms with a
    correction when the name did not set one); () otherwise."""
    keys = setting_keys(sweep)
    if bare and "correction" in rows:
        rows = rows[rows["correction"].map(lambda c: c is None or c != c)]  # NaN: not set
    rows = rows.drop_duplicates("arm")
    if not keys or rows.empty or rows[keys].map(hashable).duplicated().any():
        return ()
    return tuple(sorted(rows["arm"]))


def _same(value: object, text: str) -> bool:
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def compare(sweep: Sweep, baselines: tuple[str, ...], rng: np.random.Generator, reps: int = stats.REPS,
            margin: float | None = None, baseline_source: str = "") -> Comparison:
    """``baselines`` is what :func:`choose_baseline` names. When the sweep file names the baseline, its declared
    comparisons, families and looks decide (sweeps.plan, workbench.verdicts); a ``--baseline`` of the reader's
    own choosing makes one family tested at one look. ``margin`` overrides the sweep file's equivalence_margin."""
    finished = sweep.finished
    objective_of = finished.drop_duplicates("arm").set_index("arm")["objective"].to_dict()
    seeds = {arm: tuple(int(s) for s in group.sort_values("seed")["seed"]) for arm, group in finished.groupby("arm")}
    keys = setting_keys(sweep) if len(baselines) > 1 else []
    setting_of = {t.arm: ", ".join(f"{k}={format_setting(getattr(t, k))}" for k in keys)
                  for t in sweep.trials.dropna(subset=["objective"]).drop_duplicates("arm").itertuples(index=False)}
    declared = None if baseline_source == "--baseline" else _declared(sweep)
    if declared is not None:
        plan = verdict_plan(sweep.spec)
    else:
        every = tuple(sorted({s for arm_seeds in seeds.values() for s in arm_seeds}))
        plan = verdicts.Plan(every, (len(every),), multiplicity=sweep.spec.multiplicity,
                             **_margin(sweep.spec.equivalence_margin))
    if margin is not None:
        plan = replace(plan, margin=margin, relative_margin=False)
    arms, lead_arms, found = compare_arms(seed_scores(finished), objective_of, baselines, rng, reps, plan=plan,
                                          seeds=seeds, setting_of=setting_of, declared=declared,
                                          complete=_complete_looks(sweep))
    fits = {objective: _entropy_fit(sweep, arm) for objective, arm in sorted(lead_arms.items())}
    return Comparison(found, arms, lead_arms, fits, flagged_runs(sweep), _notes(sweep, found), plan.margin,
                      baseline_source, plan, declared is not None)


def _margin(margin: Any) -> dict[str, Any]:
    relative = getattr(margin, "relative", None)
    return {"margin": relative, "relative_margin": True} if relative is not None else {"margin": float(margin)}


def _declared(sweep: Sweep) -> dict[str, tuple[str, str]] | None:
    """arm → (its baseline arm, its family) as the sweep file declares them (sweeps.plan), for the arms that ran;
    None when the file declares none, or its grid is not the trials' (a sweep not written by the launcher)."""
    planned = declared_comparisons(sweep.spec)
    if planned is None or "point" not in sweep.trials:
        return None
    label = sweep.trials.dropna(subset=["objective"]).drop_duplicates("point").set_index("point")["arm"].to_dict()
    if not set(label) <= {key for p in planned for key in (p.arm, p.baseline)}:
        return None
    return {label[p.arm]: (label[p.baseline], p.family) for p in planned if p.arm in label and p.baseline in label}


def _complete_looks(sweep: Sweep) -> int | None:
    """The looks whose trials have all ended (None: all of them, the sweep is not running)."""
    if not sweep.still_running:
        return None
    open_looks = [*sweep.trials.loc[sweep.trials["state"].isin(("RUNNING", "WAITING")), "look"],
                  *([sweep.next_look] if sweep.next_look is not None else [])]
    return int(min(open_looks)) - 1 if open_looks else None


def compare_arms(scores: dict[str, np.ndarray], objective_of: dict[str, str], baselines: str | tuple[str, ...],
                 rng: np.random.Generator, reps: int = stats.REPS, plan: verdicts.Plan | None = None,
                 seeds: dict[str, tuple[int, ...]] | None = None, setting_of: dict[str, str] | None = None,
                 declared: dict[str, tuple[str, str]] | None = None, complete: int | None = None
                 ) -> tuple[list[ArmResult], dict[str, str], tuple[str, ...]]:
    """Per arm its estimates and, against its baseline arm, the paired difference on the seeds both ran, TOST
    against ± the margin, the verdict (workbench.verdicts.decide: across the plan's looks, adjusted within the
    family), P(beats baseline) and the planning figures; per setting, best mean first. Returns (arms, the arm each
    objective's curves show, baseline arms).

    ``baselines`` is an arm, an objective that has exactly one arm (else no arm is the baseline), or one arm per
    setting (``setting_of``: arm → its setting): then each arm is compared with its own setting's. ``declared``
    (arm → (baseline, family)) overrides both; without it every comparison is in one family. ``seeds``: arm → the
    seeds of its scores, in order (default: 0, 1, …)."""
    seeds = seeds or {a: tuple(range(len(v))) for a, v in scores.items()}
    setting_of = setting_of or {}
    if plan is None:
        every = tuple(sorted({s for arm_seeds in seeds.values() for s in arm_seeds}))
        plan = verdicts.Plan(every, (len(every),))
    if isinstance(baselines, str):
        named = (baselines,) if baselines in scores else tuple(a for a in sorted(scores) if objective_of[a] == baselines)
        baselines = named if len(named) == 1 else ()
    if declared is not None:
        baselines = tuple(sorted({b for b, _ in declared.values()} | set(baselines)))
    baselines = tuple(b for b in baselines if b in scores)
    base_of = {setting_of.get(b, ""): b for b in baselines}
    # Settings in the order the sweep ran them (setting_of follows the trials: the sweep file's order of values).
    settings = list(dict.fromkeys([*(s for a, s in setting_of.items() if a in scores),
                                   *(setting_of.get(a, "") for a in sorted(scores))]))
    # Sorted names: the generator's stream (IQM bootstrap) does not depend on dict order.
    arms = sorted((ArmResult(a, objective_of[a], stats.mean_interval(scores[a]),
                             stats.iqm_interval(scores[a], rng, reps=reps), seeds.get(a, ()),
                             setting=setting_of.get(a, "")) for a in sorted(scores)),
                  key=lambda r: (settings.index(r.setting), -r.mean.value, r.arm))
    lead_arms: dict[str, str] = {objective_of[baselines[0]]: baselines[0]} if baselines else {}
    for result in arms:
        lead_arms.setdefault(result.objective, result.arm)
    pairs = []
    for result in arms:  # already in a fixed order
        if declared is not None:
            baseline, family = declared.get(result.arm, (None, None))
        else:
            baseline = base_of.get(result.setting) if len(baselines) > 1 else (baselines or (None,))[0]
            family = IMPLICIT_FAMILY
        if baseline is None or result.arm == baseline or baseline not in scores:
            continue
        x, base = scores[result.arm], scores[baseline]
        result.baseline, result.family = baseline, family
        result.improvement = stats.improvement_interval(x, base)
        by_seed = dict(zip(seeds[result.arm], x)), dict(zip(seeds[baseline], base))
        if len(set(by_seed[0]) & set(by_seed[1])) >= 2:
            pairs.append(verdicts.Pair(result.arm, family, *by_seed))
        else:  # fewer than two shared seeds: nothing to pair, Welch's interval alone and no verdict
            result.test = stats.difference_test(x, base, paired=False)
            result.difference = result.test.difference if result.test else stats.difference(x, base)
            result.verdict = "not resolved"
    decisions = verdicts.decide(pairs, plan, complete)
    outliers = verdicts.leave_one_out(pairs, plan, decisions, complete)
    for result in arms:
        d = decisions.get(result.arm)
        if d is not None:
            _fill(result, d, scores, seeds, plan)
            result.outlier = outliers.get(result.arm)
    return arms, lead_arms, baselines


def _fill(result: ArmResult, d: verdicts.Decision, scores: dict[str, np.ndarray], seeds: dict[str, tuple[int, ...]],
          plan: verdicts.Plan) -> None:
    """The arm's comparison as decided: its verdict and adjusted p-values, and the test and planning figures on the
    seeds the verdict was tested on."""
    x = dict(zip(seeds[result.arm], scores[result.arm]))
    y = dict(zip(seeds[result.baseline], scores[result.baseline]))
    used = d.seeds or tuple(s for s in plan.seeds if s in x and s in y)
    xs, ys = np.array([x[s] for s in used]), np.array([y[s] for s in used])
    result.family, result.verdict, result.look, result.compared, result.stop = d.family, d.verdict, d.look, d.n, d.stop
    result.p_adjusted, result.tost_p_adjusted = d.p_adjusted, d.tost_adjusted
    result.test = stats.difference_test(xs, ys, paired=True)
    result.difference = result.test.difference if result.test else stats.difference(xs, ys)
    result.margin = d.test.margin if d.test else (plan.margin * abs(float(ys.mean())) if plan.relative_margin
                                                  else plan.margin)
    result.tost_p = d.test.tost_p if d.test else None
    result.mde = stats.minimum_detectable_effect(xs, ys, paired=True)
    result.seeds_for_margin = stats.seeds_for_margin(xs, ys, result.margin, True) if result.margin > 0 else None


def _entropy_fit(sweep: Sweep, arm: str) -> stats.EntropyFit | None:
    """R against H at the evaluation steps of the arm's finished runs, seeds pooled."""
    rows = sweep.steps[(sweep.steps["arm"] == arm) & (sweep.steps["status"] == "finished") & (sweep.steps["step"] > 0)]
    if sweep.metric not in rows or "entropy/mean" not in rows:
        return None
    rows = rows.dropna(subset=[sweep.metric, "entropy/mean"])
    return stats.entropy_fit(rows["entropy/mean"].to_numpy(), rows[sweep.metric].to_numpy())


def flagged_runs(sweep: Sweep) -> pd.DataFrame:
    """Runs that did not finish or carry a flag (zero_shift: μ = π throughout, so the objectives could not differ)."""
    runs = sweep.runs
    if runs.empty:
        return runs
    has_flag = runs["flags"].map(bool) | runs["status"].isin(FLAGGED_STATUSES)
    return runs[has_flag].sort_values(["trial", "seed"])


EVAL_PREFIX = "eval/"
MACHINE_KEYS = ("cpu", "cpu_capability", "threads", "torch", "mkl", "onednn")


def seeds_frame(sweep: Sweep) -> pd.DataFrame:
    """One row per finished run (arm × seed): every final eval metric, the base policy's, the run folder and the
    machine it ran on (seeds.csv: anyone can recompute every statistic of the report from it)."""
    rows = []
    for run in sweep.finished.sort_values(["arm", "seed"]).itertuples():
        summary = _summary(sweep, run.run)
        final, base = summary.get("eval") or {}, summary.get("base_eval") or {}
        row: dict[str, Any] = {"objective": run.objective, "arm": run.arm, "seed": int(run.seed),
                               "metric": sweep.metric, "final": run.final}
        row.update({f"final {k}": v for k, v in sorted(final.items()) if k.startswith(EVAL_PREFIX)})
        row.update({f"base {k}": v for k, v in sorted(base.items()) if k.startswith(EVAL_PREFIX)})
        row["run"] = run.run
        row.update({f"machine {k}": (summary.get("machine") or {}).get(k) for k in MACHINE_KEYS})
        rows.append(row)
    return pd.DataFrame(rows)


def _summary(sweep: Sweep, run: str) -> dict[str, Any]:
    try:
        data = json.loads((sweep.folder / run / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def machines(sweep: Sweep) -> list[dict[str, Any]]:
    """The distinct machines (MACHINE_KEYS) the finished runs recorded; {} for runs that recorded none."""
    seen: list[dict[str, Any]] = []
    for run in sweep.finished["run"]:
        machine = {k: v for k, v in (_summary(sweep, run).get("machine") or {}).items() if k in MACHINE_KEYS}
        if machine not in seen:
            seen.append(machine)
    return seen


def _machine_note(sweep: Sweep) -> str | None:
    found = machines(sweep)
    if len(found) <= 1 and all(found):
        return None
    if not any(found):
        return ("The runs did not record the machine they ran on (recorded before summary.json held it): whether "
                "they are reproducible bit for bit here is unknown.")
    described = "; ".join(", ".join(f"{k} {m.get(k)}" for k in MACHINE_KEYS) if m else "not recorded" for m in found)
    return (f"The runs came from {len(found)} different machines ({described}): the same seed on other CPU kernels "
            "or another thread count is a fresh draw, so the seeds are not the same experiment on each.")


def _notes(sweep: Sweep, baselines: tuple[str, ...]) -> list[str]:
    trials = sweep.trials
    notes = [note] if (note := _machine_note(sweep)) else []
    if sweep.still_running:
        states = trials["state"].value_counts()
        counts = ", ".join(f"{int(states.get(s, 0))} {word}" for s, word in
                           (("COMPLETE", "complete"), ("RUNNING", "running"), ("WAITING", "queued")))
        notes.append(f"The sweep is still running ({counts}): this report uses the {len(sweep.finished)} runs "
                     "finished so far and will change when the sweep ends.")
    failed = trials[trials["state"] == "FAIL"]
    if len(failed):
        reasons = "; ".join(f"trial {t.trial}: {t.failure or 'no reason recorded'}" for t in failed.itertuples())
        notes.append(f"{len(failed)} trial(s) failed ({reasons}); their finished seeds are still used.")
    if not baselines:
        notes.append("No baseline: the sweep names none (--baseline or the sweep file's baseline:) and has no single "
                     "grpo arm, so no arm is compared against one.")
    return notes
