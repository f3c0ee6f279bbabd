"""The comparison a report states: per-arm estimates over seeds, the baseline, the winner, flagged runs.

Everything here is a value computed from :class:`~workbench.analysis.load.Sweep`; one numpy
Generator, seeded by the caller, is consumed in a fixed order so two builds agree to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import ConfigError
from . import stats
from .load import Sweep, seed_scores

FLAGGED_STATUSES = ("failed", "pruned", "running", "interrupted")


@dataclass
class ArmResult:
    arm: str
    objective: str
    mean: stats.Estimate
    iqm: stats.Estimate
    # Against the baseline arm (None for the baseline itself, or when there is no baseline).
    difference: stats.Estimate | None = None  # Welch's interval: it excludes 0 exactly when welch.p < 0.05
    improvement: stats.Estimate | None = None
    welch: stats.Welch | None = None
    seeds_needed: float | None = None  # per arm, for 80 % power at the observed difference and spreads


@dataclass
class Comparison:
    baseline_arm: str | None
    arms: list[ArmResult]  # best mean first
    lead_arms: dict[str, str]  # objective → its best arm (the curves show these)
    fits: dict[str, stats.EntropyFit | None]
    flagged: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def result(self, arm: str) -> ArmResult:
        return next(a for a in self.arms if a.arm == arm)


def choose_baseline(sweep: Sweep, baseline: str | None) -> str | None:
    """The requested objective (an error if the sweep never ran it); by default grpo when present."""
    objectives = sorted(sweep.trials["objective"].dropna().unique())
    if baseline is None:
        return "grpo" if "grpo" in objectives else None
    if baseline not in objectives:
        raise ConfigError(f"--baseline {baseline!r}: not an objective of sweep {sweep.name!r} "
                          f"(objectives: {', '.join(objectives) or 'none yet'})")
    return baseline


def compare(sweep: Sweep, baseline: str | None, rng: np.random.Generator, reps: int = stats.REPS) -> Comparison:
    finished = sweep.finished
    objective_of = finished.drop_duplicates("arm").set_index("arm")["objective"].to_dict()
    arms, lead_arms, baseline_arm = compare_arms(seed_scores(finished), objective_of, baseline, rng, reps)
    fits = {objective: _entropy_fit(sweep, arm) for objective, arm in sorted(lead_arms.items())}
    return Comparison(baseline_arm, arms, lead_arms, fits, flagged_runs(sweep), _notes(sweep, baseline))


def compare_arms(scores: dict[str, np.ndarray], objective_of: dict[str, str], baseline: str | None,
                 rng: np.random.Generator, reps: int = stats.REPS
                 ) -> tuple[list[ArmResult], dict[str, str], str | None]:
    """Per arm its estimates and, against the baseline objective's best arm, the difference, Welch's test,
    P(beats baseline) and the seeds needed; best mean first. Returns (arms, lead arm per objective, baseline arm)."""
    # Sorted names: the generator's stream (IQM bootstrap) does not depend on dict order.
    arms = sorted((ArmResult(a, objective_of[a], stats.mean_interval(scores[a]),
                             stats.iqm_interval(scores[a], rng, reps=reps)) for a in sorted(scores)),
                  key=lambda r: (-r.mean.value, r.arm))
    lead_arms: dict[str, str] = {}
    for result in arms:
        lead_arms.setdefault(result.objective, result.arm)
    baseline_arm = lead_arms.get(baseline) if baseline else None
    if baseline_arm is not None:
        base = scores[baseline_arm]
        for result in arms:  # already in a fixed order
            if result.arm == baseline_arm:
                continue
            x = scores[result.arm]
            result.welch = stats.welch_test(x, base)
            result.difference = stats.difference(x, base)
            result.improvement = stats.improvement_interval(x, base)
            result.seeds_needed = stats.seeds_needed(x, base)
    return arms, lead_arms, baseline_arm


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


def _notes(sweep: Sweep, baseline: str | None) -> list[str]:
    trials = sweep.trials
    notes = []
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
    if baseline is None:
        notes.append("No baseline: the sweep has no grpo arm and --baseline was not given, so no arm is compared "
                     "against one.")
    return notes
