"""The token regime of a sweep: how rare the sampled tokens were under the sampler (``behaviour/*``).

Ratio clips and divergence trust regions differ only on tokens with small μ (DESIGN.md, "The token
regime"), so a comparison means little in a regime without them. Runs recorded before the trainer
logged the profile simply have no such columns; they are counted, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .load import Sweep

PROFILE = ("behaviour/frac_rare", "behaviour/frac_very_rare", "behaviour/median_prob")
FRAC_RARE = "behaviour/frac_rare"
FEW_RARE = 0.10  # below this fraction of sampled tokens with μ < 0.1, the summary warns


@dataclass(frozen=True)
class TokenProfile:
    table: pd.DataFrame  # index objective; columns "runs", then "<metric> first" / "<metric> last", runs averaged
    frac_rare: float  # over every logged step of every finished run that logged it (runs weigh equally)
    runs: int  # finished runs that logged the profile
    unlogged: int  # finished runs that did not (recorded before the profile existed)


def sweep_profile(sweep: Sweep) -> TokenProfile | None:
    """Each metric averaged over the first and the last tenth of each finished run's training steps,
    then over the runs of each objective; None when no finished run logged the profile."""
    steps = sweep.steps
    finished = set(sweep.finished["run"])
    if FRAC_RARE not in steps or not finished:
        return None
    rows = steps[steps["run"].isin(finished) & (steps["step"] > 0)].dropna(subset=[FRAC_RARE])
    if rows.empty:
        return None
    last = rows.groupby("run")["step"].transform("max")
    tenth = np.maximum(1, np.ceil(last / 10))
    parts = {"first": rows[rows["step"] <= tenth], "last": rows[rows["step"] > last - tenth]}
    columns = [m for m in PROFILE if m in rows]
    table = pd.concat([rows.groupby("objective")["run"].nunique().rename("runs"),
                       *(_per_objective(frame, columns).add_suffix(f" {part}") for part, frame in parts.items())],
                      axis=1)
    frac_rare = float(rows.groupby("run")[FRAC_RARE].mean().mean())
    logged = rows["run"].nunique()
    return TokenProfile(table, frac_rare, logged, len(finished) - logged)


def _per_objective(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean over each run's steps, then over an objective's runs (a long run does not outweigh a short one)."""
    return rows.groupby(["objective", "run"])[columns].mean().groupby("objective").mean()


def warning(profile: TokenProfile | None) -> str | None:
    """The one-sentence summary warning when the sweep's sampled tokens are rarely rare."""
    if profile is None or profile.frac_rare >= FEW_RARE:
        return None
    return (f"Few rare tokens: ratio- and divergence-based trust regions act almost alike in this regime "
            f"(only {profile.frac_rare:.1%} of the sampled tokens had μ < 0.1 over the finished runs; "
            f"SmolLM2-135M with its 49k-token vocabulary samples 34%).")
