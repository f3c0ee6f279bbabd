"""Verdicts on declared comparisons: a paired test and an equivalence test per comparison, looks at planned
numbers of seeds with the error rate held across them, and the p-values adjusted within each declared family.

The sweep launcher calls :func:`decide` after every look to learn which comparisons still need seeds; the report
calls it once on every seed to state the verdicts. Both read the same function, so what stopped the seeds and
what the report says are one computation.

How, and why:

- **One comparison, one look.** Paired by seed (the arms ran the same seeds): Student's paired t
  (``scipy.stats.ttest_rel``) for the difference and Schuirmann's two one-sided tests against ±margin
  (``statsmodels``' ``ttost_paired``) for equivalence.
- **Across looks: a group-sequential design with O'Brien–Fleming boundaries.** Seeds come in looks of planned
  sizes n_1 < … < n_K (``seeds: {initial, step, max}``); at look k the difference is significant at level α
  when |Z_k| ≥ C_α/√t_k, t_k = n_k/n_K, with C_α set so that P(any look crosses | no difference) = α. The
  boundary spends almost nothing early (a resolved verdict at 10 of 50 seeds needs |Z| ≈ 4.4) and keeps the last
  look's close to the fixed-n test, so the comparisons that need all 50 seeds lose little power: we chose it over
  Pocock's flat boundary, which resolves easy comparisons sooner but costs the hard ones power at the end, and
  over anytime-valid confidence sequences, which pay for unplanned looks we never take (their intervals at
  n ≤ 50 are about 1.5–2 times wider). Each test is turned into its *repeated p-value* (Jennison & Turnbull,
  "Group Sequential Methods", ch. 9): the smallest α whose boundary it crosses at this look. Under no
  difference, the smallest repeated p-value over all looks is below α with probability α. A paired t statistic
  enters through its p-value (converted to the normal scale at the same p), the usual practice for t-tests in
  group-sequential designs; tests/test_verdicts.py simulates the whole procedure.
- **Equivalence across looks:** each one-sided test of TOST has its own one-sided O'Brien–Fleming design; TOST's
  repeated p is the larger of the two.
- **Families:** at each look the repeated p-values of a family's comparisons are adjusted together (Holm by
  default, Benjamini–Hochberg, or none: :func:`adjust`); a comparison that was
  decided keeps the p-value of the look that decided it. Holm is monotone and each comparison's smallest repeated
  p-value is a valid p-value, so the chance of any false verdict in a family, over all looks, stays ≤ α.
- **Words:** better / worse when the adjusted difference p < α; matches when the adjusted TOST p < α; both at
  once is "better, within margin" or "worse, within margin" (real but inside the margin, never "matches"); else
  not resolved. A comparison is resolved by any of the first five, and then gets no more seeds.
- **Outliers:** :func:`leave_one_out` decides each resolved comparison again with each of its seed pairs left out in
  turn (looks, family and adjustment as before), so a report can say whether a verdict rests on one seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
LEVEL = 0.95
MARGIN = 0.02  # default equivalence margin, in units of the metric (a sweep file's equivalence_margin)
MULTIPLICITY = ("holm", "bh", "none")
WITHIN = ", within margin"
VERDICTS = ("better", "worse", "matches", f"better{WITHIN}", f"worse{WITHIN}", "not resolved")
RESOLVED = VERDICTS[:5]
# Why a comparison got no more seeds (or that it still gets them).
STOPS = ("resolved", "max reached", "continues")
BOUNDARY = "O'Brien–Fleming group-sequential boundary (repeated p-values)"

# The grid of the crossing integral: points on the continuation interval (201: within 2e-7 of 801), and how far below
# the one-sided bound the density is kept (beyond 10 SD of the last look it is below 1e-23).
_GRID = 201
_TAIL_SD = 10.0
# Repeated p-values are read off a table of the crossing probability over these bounds (monotone cubic in log p,
# within 1e-6 of the integral): a look's decisions then cost microseconds, which the simulations need.
_TABLE_BOUNDS = np.linspace(0.0, 8.0, 321)


# ---- one comparison at one look ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedTest:
    """mean(x − y) over paired seeds: its t interval and p (the same scipy result), and TOST against ±margin."""

    n: int
    difference: float
    low: float
    high: float
    t: float
    p: float
    df: float
    margin: float | None = None
    tost_p: float | None = None  # the larger of the two one-sided p-values
    tost_lower_p: float | None = None  # H0: difference ≤ −margin
    tost_upper_p: float | None = None  # H0: difference ≥ +margin


def paired_test(x: Sequence[float], y: Sequence[float], margin: float | None, level: float = LEVEL
                ) -> PairedTest | None:
    """None where no test applies: fewer than 2 pairs, or pairs that all differ by the same amount. No TOST when
    ``margin`` is None."""
    from statsmodels.stats.weightstats import ttost_paired

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"a paired test needs the same seeds on both sides, got {len(x)} and {len(y)}")
    if margin is not None and margin <= 0:
        raise ValueError(f"equivalence margin must be positive, got {margin}")
    d = x - y
    if len(d) < 2 or np.ptp(d) == 0:
        return None
    result = scipy_stats.ttest_rel(x, y)
    ci = result.confidence_interval(level)
    test = PairedTest(len(d), float(d.mean()), float(ci.low), float(ci.high), float(result.statistic),
                      float(result.pvalue), float(result.df))
    if margin is None:
        return test
    tost, lower, upper = ttost_paired(x, y, -margin, margin)
    return replace(test, margin=float(margin), tost_p=float(tost), tost_lower_p=float(lower[1]),
                   tost_upper_p=float(upper[1]))


def verdict(difference: float, p: float, tost_p: float, alpha: float = ALPHA) -> str:
    """One of VERDICTS from a difference and its (adjusted) p-values."""
    different, equivalent = p < alpha, tost_p < alpha
    if different:
        word = "better" if difference > 0 else "worse"
        return word + WITHIN if equivalent else word
    return "matches" if equivalent else "not resolved"


# ---- looks: the O'Brien–Fleming design and its repeated p-values ------------------------------------------------

def crossing_probability(bound: float, fractions: Sequence[float], two_sided: bool = True) -> float:
    """P(some look k has Z_k·√t_k ≥ ``bound``, or |Z_k|·√t_k for a two-sided test) under no difference, for looks at
    information fractions t_1 < … < t_K = 1.

    Z_k·√t_k = B(t_k) for a Brownian motion B, so an O'Brien–Fleming boundary is a constant on B and the chance of
    never crossing it is a K-fold integral of Gaussian transition densities over the continuation interval,
    evaluated by recursive quadrature (Armitage, McPherson & Rowe 1969; Jennison & Turnbull ch. 19). scipy's
    multivariate normal cdf gives the same numbers (tests/test_verdicts.py) but by randomised quasi-Monte Carlo, at
    about a second a call for 1e-7; this takes a millisecond and is deterministic.
    """
    t = np.asarray(fractions, dtype=np.float64)
    if bound <= 0:
        return 1.0
    if len(t) == 1:
        tail = scipy_stats.norm.sf(bound / math.sqrt(t[0]))
        return float(2 * tail if two_sided else tail)
    low = -bound if two_sided else -bound - _TAIL_SD * math.sqrt(t[-1])
    grid = np.linspace(low, bound, _GRID)
    weights = np.full(_GRID, (grid[1] - grid[0]) / 3)  # Simpson's rule
    weights[1:-1:2] *= 4
    weights[2:-1:2] *= 2
    density = scipy_stats.norm.pdf(grid, scale=math.sqrt(t[0]))
    for step in np.diff(t):
        kernel = scipy_stats.norm.pdf(grid[:, None] - grid[None, :], scale=math.sqrt(step))
        density = kernel @ (weights * density)
    return float(min(1.0, max(0.0, 1.0 - weights @ density)))


def repeated_p(p: float, look: int, fractions: Sequence[float], two_sided: bool = True) -> float:
    """The repeated p-value at ``look`` (1-based) of a test whose fixed-n p-value is ``p``: the α of the
    O'Brien–Fleming design over ``fractions`` whose boundary this statistic just reaches."""
    if not 0 < look <= len(fractions):
        raise ValueError(f"look {look} is not one of the {len(fractions)} planned looks")
    z = scipy_stats.norm.isf(p / 2 if two_sided else p)
    bound = float(z * math.sqrt(fractions[look - 1]))
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) == 1 or bound <= 0 or bound >= _TABLE_BOUNDS[-1]:
        return crossing_probability(bound, fractions, two_sided)
    return float(np.exp(_table(fractions, two_sided)(bound)))


@lru_cache(maxsize=64)
def _table(fractions: tuple[float, ...], two_sided: bool):
    from scipy.interpolate import PchipInterpolator

    log_p = [math.log(max(crossing_probability(b, fractions, two_sided), 1e-300)) for b in _TABLE_BOUNDS]
    return PchipInterpolator(_TABLE_BOUNDS, log_p)


def boundary(fractions: Sequence[float], alpha: float = ALPHA, two_sided: bool = True) -> list[float]:
    """The nominal p-value a fixed-n test must reach at each look to cross the design's boundary at ``alpha``
    (the boundary on the report's own scale)."""
    from scipy.optimize import brentq

    bound = brentq(lambda c: crossing_probability(c, fractions, two_sided) - alpha, 1e-6, _TABLE_BOUNDS[-1],
                   xtol=1e-10)
    z = [bound / math.sqrt(t) for t in fractions]
    return [float(2 * scipy_stats.norm.sf(v) if two_sided else scipy_stats.norm.sf(v)) for v in z]


def adjust(p_values: Sequence[float], method: str) -> np.ndarray:
    """p-values adjusted within one family: Holm, Benjamini–Hochberg (scipy) or none.

    Holm by hand (the step-down max of (m − i + 1)·p_(i)): statsmodels' ``multipletests`` gives the same numbers
    (tests/test_verdicts.py) but runs ``gc.collect()`` on every Holm call, tens of milliseconds in a process holding
    torch, and the leave-one-out check and the simulations adjust thousands of times."""
    if method not in MULTIPLICITY:
        raise ValueError(f"multiplicity must be one of {', '.join(MULTIPLICITY)}; got {method!r}")
    values = np.asarray(p_values, dtype=np.float64)
    if method == "none" or len(values) == 0:
        return values
    if method == "bh":
        return scipy_stats.false_discovery_control(values, method="bh")
    order = np.argsort(values, kind="stable")
    stepped = np.maximum.accumulate(values[order] * np.arange(len(values), 0, -1))
    adjusted = np.empty_like(values)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# ---- comparisons over looks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    """One declared comparison: an arm against its baseline, each as seed → final value."""

    key: str
    family: str
    x: Mapping[int, float]
    y: Mapping[int, float]


@dataclass(frozen=True)
class Plan:
    """The looks of a sweep: the seeds in the order they are added, the cumulative seeds at each look, each
    family's cap (a family with a smaller cap stops at that look), the margin and the multiplicity."""

    seeds: tuple[int, ...]
    sizes: tuple[int, ...]
    margin: float = MARGIN
    relative_margin: bool = False  # margin × |the baseline's mean over the compared seeds|
    multiplicity: str = "holm"
    family_max: Mapping[str, int] = field(default_factory=dict)
    alpha: float = ALPHA

    def looks(self, family: str) -> tuple[int, ...]:
        """The look sizes this family is tested at."""
        cap = self.family_max.get(family, self.sizes[-1])
        return tuple(n for n in self.sizes if n <= cap)


@dataclass
class Decision:
    """Where one comparison stands: its verdict, the look and seeds it was last tested at, its tests."""

    key: str
    family: str
    verdict: str = "not resolved"
    look: int = 0  # 1-based; 0 = not tested yet
    n: int = 0
    seeds: tuple[int, ...] = ()  # the paired seeds it was last tested on
    test: PairedTest | None = None
    p_sequential: float = 1.0  # the repeated p-value of the difference (equal to test.p with one look)
    p_adjusted: float = 1.0
    tost_sequential: float = 1.0
    tost_adjusted: float = 1.0
    stop: str = "continues"

    @property
    def resolved(self) -> bool:
        return self.verdict in RESOLVED


def decide(pairs: Sequence[Pair], plan: Plan, complete: int | None = None) -> dict[str, Decision]:
    """Replay the looks in order: at each, test every undecided comparison whose seeds for that look are in, adjust
    within its family, and decide. ``complete``: the looks (1-based, up to this one) whose runs have all ended, so
    that a comparison short of seeds there (a failed run) is tested on the seeds it has; a later look is tested
    only once all its seeds are in. None: every look is complete (a finished sweep)."""
    complete = len(plan.sizes) if complete is None else complete
    decisions = {p.key: Decision(p.key, p.family) for p in pairs}
    families: dict[str, list[Pair]] = {}
    for pair in pairs:
        families.setdefault(pair.family, []).append(pair)
    for k in range(1, len(plan.sizes) + 1):
        for family, members in families.items():
            looks = plan.looks(family)
            if k > len(looks):
                continue
            tested = [pair for pair in members if decisions[pair.key].stop == "continues"
                      and _test(pair, decisions[pair.key], plan, k, looks, k <= complete)]
            if not tested:
                continue
            adjusted = adjust([decisions[p.key].p_sequential for p in members], plan.multiplicity)
            adjusted_tost = adjust([decisions[p.key].tost_sequential for p in members], plan.multiplicity)
            for pair, p, tost in zip(members, adjusted, adjusted_tost):
                if pair not in tested:
                    continue
                d = decisions[pair.key]
                d.p_adjusted, d.tost_adjusted = float(p), float(tost)
                d.verdict = verdict(d.test.difference, d.p_adjusted, d.tost_adjusted, plan.alpha) if d.test \
                    else "not resolved"
                d.stop = "resolved" if d.resolved else "max reached" if k == len(looks) else "continues"
    for d in decisions.values():  # every look of its family has ended: it has all the seeds it will get
        if d.stop == "continues" and complete >= len(plan.looks(d.family)):
            d.stop = "max reached"
    return decisions


def _test(pair: Pair, d: Decision, plan: Plan, k: int, looks: tuple[int, ...], ended: bool) -> bool:
    """Test ``pair`` at look ``k`` and record the test and its repeated p-values in ``d``; False when the look's
    seeds are not in yet (all of them, or, once the look has ``ended``, at least two)."""
    wanted = plan.seeds[:looks[k - 1]]
    common = [s for s in wanted if s in pair.x and s in pair.y]
    if len(common) < 2 or len(common) <= d.n or (len(common) < len(wanted) and not ended):
        return False  # too few seeds, none new since its last test (never the same data twice), or not in yet
    x, y = [pair.x[s] for s in common], [pair.y[s] for s in common]
    margin = plan.margin * abs(float(np.mean(y))) if plan.relative_margin else plan.margin
    d.look, d.n, d.seeds = k, len(common), tuple(common)
    d.test = paired_test(x, y, margin) if margin > 0 else None
    if d.test is None:
        d.p_sequential = d.tost_sequential = 1.0
        return True
    # The look's information fraction is the seeds it has (fewer than planned when runs failed).
    fractions = [n / looks[-1] for n in looks[:k - 1]] + [len(common) / looks[-1]] + \
        [n / looks[-1] for n in looks[k:]]
    d.p_sequential = repeated_p(d.test.p, k, fractions)
    d.tost_sequential = max(repeated_p(d.test.tost_lower_p, k, fractions, two_sided=False),
                            repeated_p(d.test.tost_upper_p, k, fractions, two_sided=False))
    return True


@dataclass(frozen=True)
class LeaveOneOut:
    """A resolved verdict decided again without each of its seed pairs in turn: how many of those removals change
    the verdict, and the worst one: a removal that leaves it not resolved, else one that changes its word (matches
    to "better, within margin", say), else the one that brings its deciding p nearest α."""

    key: str
    tried: int  # the seed pairs left out, one at a time
    changed: int  # removals after which the verdict is another word
    seed: int  # the worst seed pair to leave out
    verdict: str  # the verdict without it
    p: float  # without it, the adjusted p the original verdict rests on (see deciding_p)

    @property
    def survives(self) -> bool:
        return self.changed == 0


def deciding_p(d: Decision, word: str) -> float:
    """The adjusted p a verdict of ``word`` needs below α: the difference's for better/worse, TOST's for matches,
    the larger of the two for a within-margin verdict."""
    if word == "matches":
        return d.tost_adjusted
    if word.endswith(WITHIN):
        return max(d.p_adjusted, d.tost_adjusted)
    return d.p_adjusted


def leave_one_out(pairs: Sequence[Pair], plan: Plan, decisions: Mapping[str, Decision],
                  complete: int | None = None) -> dict[str, LeaveOneOut]:
    """For every resolved comparison in ``decisions`` (:func:`decide` on ``pairs``): its family decided again with
    one of its tested seed pairs removed from it, for each pair in turn. The other comparisons keep their seeds,
    so the looks, the family's adjustment and the seeds the comparison would have had are as in the study."""
    found = {}
    for pair in pairs:
        d = decisions[pair.key]
        if not d.resolved:
            continue
        family = [p for p in pairs if p.family == pair.family]
        outcomes = []
        for seed in d.seeds:
            without = replace(pair, x={s: v for s, v in pair.x.items() if s != seed},
                              y={s: v for s, v in pair.y.items() if s != seed})
            again = decide([without if p is pair else p for p in family], plan, complete)[pair.key]
            outcomes.append((not again.resolved, again.verdict != d.verdict, deciding_p(again, d.verdict), seed,
                             again.verdict))
        worst = max(outcomes, key=lambda o: o[:3])
        found[pair.key] = LeaveOneOut(pair.key, len(outcomes), sum(o[1] for o in outcomes), worst[3], worst[4],
                                      float(worst[2]))
    return found


def extend(decisions: Mapping[str, Decision]) -> list[str]:
    """The comparisons that get the next look's seeds."""
    return [key for key, d in decisions.items() if d.stop == "continues"]
