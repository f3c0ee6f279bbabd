"""Token statistics: what each arm did to each token against the on-policy weight, and the summaries pooled over
steps and runs (plain JSON: the CLI's replay.json and the report's section read them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .gradients import RunReplay, StepReplay
from .inputs import REFERENCE

CHANGE_TOLERANCE = 0.1  # |g/A − 1| above it: the weight differs from the on-policy weight by more than 10 %
# μ groups of the token table (DESIGN.md's token regime: ratio clips and divergences disagree on rare tokens).
MU_BINS: tuple[tuple[str, float, float], ...] = (("mu<0.01", 0.0, 0.01), ("0.01<=mu<0.1", 0.01, 0.1),
                                                 ("mu>=0.1", 0.1, math.inf))
ADV_SIGNS = ("all", "A>0", "A<0")
# What an objective did to a token (the scatter figure's colours and the table's columns).
KEPT, CHANGED, FLIPPED, ZERO = "as on-policy", "changed >10%", "flipped sign", "zero"


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
