"""Statistics over seeds: aggregates and intervals that stay honest with few seeds, and planning figures.

Scores are ``array[num_seeds, num_tasks]`` (a 1-D array is one task), rliable's shape; the seed is the
unit of every interval (a seed's mean over tasks), never the steps of one run. The tests and verdicts of
a comparison (paired t, TOST, looks, families) are workbench.verdicts'; here is what a report describes
an arm and a difference with. Why each method:

- **Mean of an arm: Student's t interval** (``scipy.stats.ttest_1samp``). Seed scores of one configuration
  are close to normal, and for normal data the interval is exact at any n (it widens with t's heavy tails
  at 2–4 seeds), where a percentile bootstrap over 3 seeds covers about 75 %.
- **A difference of arms that share no seeds: Welch's interval** (``scipy.stats.ttest_ind``), shown without
  a verdict; arms that share seeds are compared paired (workbench.verdicts.paired_test).
- **P(beats baseline): Newcombe's score interval** for the Mann–Whitney probability P(X > Y)
  (Newcombe 2006, Stat. Med. 25:559, method 5; no maintained library has it). It inverts the
  Hanley–McNeil variance the way Wilson's interval inverts a proportion's, so it stays wide when every
  seed of one arm beats every seed of the other (a bootstrap collapses to [1, 1] there). Simulated
  coverage (tests/analysis/test_stats.py): 90–97 % at 3 seeds per arm, 94–97 % from 5.
- **IQM: BCa bootstrap** (``scipy.stats.bootstrap``), only from ``IQM_MIN_SEEDS`` seeds: a trimmed
  mean has no t interval, and a bootstrap cannot see the tails of fewer seeds (86 % simulated
  coverage at 5 seeds, ~94 % at 10). Below that the IQM is given without an interval.
- **Planning: the minimum detectable effect** of a paired test (``statsmodels``' ``TTestPower``; Welch's
  by our own noncentral-t root search, which statsmodels' equal-variance power does not cover) and the
  seeds TOST needs for the margin (Chow et al.'s approximation; no maintained library plans TOST).

An interval that would be a point (one seed, or seeds that agree exactly) is not given: the
:class:`Estimate` says why instead. (Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice", NeurIPS 2021, for the API's shape and the IQM.)
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats
from scipy.optimize import brentq

from ..verdicts import ALPHA, paired_test

LEVEL = 0.95
REPS = 2000  # bootstrap resamples (IQM only)
IQM_MIN_SEEDS = 10
POWER = 0.8
MAX_SEEDS = 10_000  # seeds_for_margin gives up beyond this


def as_scores(scores: np.ndarray | list[float], name: str = "scores") -> np.ndarray:
    """Validate and return ``array[num_seeds, num_tasks]`` of finite floats."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected array[num_seeds, num_tasks] with at least one seed, "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: scores must be finite (a failed run has no score: leave it out)")
    return array


def per_seed(scores: np.ndarray | list[float], name: str = "scores") -> np.ndarray:
    """Each seed's mean over tasks: the unit every interval here resamples or models."""
    return as_scores(scores, name).mean(axis=1)


def mean(scores: np.ndarray) -> float:
    return float(np.mean(as_scores(scores)))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs and tasks: the mean of the middle 50 % (rliable's headline
    aggregate), cut as scipy.stats.trim_mean(·, 0.25) cuts."""
    return float(scipy_stats.trim_mean(as_scores(scores).ravel(), 0.25))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) over all seed pairs (the Mann–Whitney statistic U / (n_x n_y))."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    return float(np.mean((x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])))


@dataclass(frozen=True)
class Estimate:
    """A value and its interval; ``low``/``high`` are None when no interval carries information
    (``why`` then says so, e.g. "1 seed")."""

    value: float
    low: float | None
    high: float | None
    seeds: int
    why: str = ""

    @property
    def has_interval(self) -> bool:
        return self.low is not None

    def excludes(self, value: float) -> bool:
        return self.has_interval and not self.low <= value <= self.high


def _no_spread(*samples: np.ndarray) -> str:
    """Why no interval: too few seeds, or seeds that agree exactly (a zero-width interval is not a finding)."""
    fewest = min(len(s) for s in samples)
    if fewest < 2:
        return f"{fewest} seed"
    if all(np.ptp(s) == 0 for s in samples):
        return "every seed scored the same"
    return ""


# ---- interval cores: vectorised over leading axes (seeds on the last), so a simulation runs them at once ----

def t_interval(x: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Student's t interval of the mean over the last axis."""
    with _constant_arms_allowed():
        ci = scipy_stats.ttest_1samp(x, 0.0, axis=-1).confidence_interval(level)
    return ci.low, ci.high


def welch_interval(x: np.ndarray, y: np.ndarray, level: float = LEVEL
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(low, high) of mean(x) − mean(y), then Welch's t, p and degrees of freedom, over the last axis."""
    with _constant_arms_allowed():
        result = scipy_stats.ttest_ind(x, y, axis=-1, equal_var=False)
        ci = result.confidence_interval(level)
    return ci.low, ci.high, result.statistic, result.pvalue, result.df


@contextlib.contextmanager
def _constant_arms_allowed() -> Iterator[None]:
    """One arm whose seeds agree exactly is valid Welch input (its variance is 0); scipy warns regardless."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        yield


def bca_iqm_interval(x: np.ndarray, rng: np.random.Generator, level: float = LEVEL, reps: int = REPS
                     ) -> tuple[np.ndarray, np.ndarray]:
    """BCa bootstrap interval of the interquartile mean over the last axis."""
    ci = scipy_stats.bootstrap((x,), _trimmed, n_resamples=reps, confidence_level=level, method="BCa",
                               random_state=rng, vectorized=True, axis=-1).confidence_interval
    return ci.low, ci.high


def _trimmed(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return scipy_stats.trim_mean(x, 0.25, axis=axis)


def newcombe_interval(theta: np.ndarray, m: int, n: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's method 5 for P(X > Y) from m and n seeds: every t whose Hanley–McNeil standard error
    (with both arms' size set to N = (m + n)/2) puts the observed θ within z of it. The set is an interval
    around θ; its ends are found by bisection on each side, all θ at once."""
    theta = np.asarray(theta, dtype=np.float64)
    z, big_n = scipy_stats.norm.ppf(0.5 + level / 2), (m + n) / 2

    def inside(t: np.ndarray) -> np.ndarray:
        variance = t * (1 - t) / (m * n) * (1 + (big_n - 1) * ((1 - t) / (2 - t) + t / (1 + t)))
        return (theta - t) ** 2 <= z * z * variance

    def edge(outer: float) -> np.ndarray:  # bisect between θ (inside) and ``outer`` (outside unless θ is there)
        near, far = theta.copy(), np.full_like(theta, outer)
        for _ in range(60):
            middle = (near + far) / 2
            keep = inside(middle)
            near, far = np.where(keep, middle, near), np.where(keep, far, middle)
        return np.where(theta == outer, outer, near)

    return edge(0.0), edge(1.0)


# ---- estimates: one arm or one pair, with the reason where there is no interval ----------------------

def mean_interval(scores: np.ndarray, level: float = LEVEL) -> Estimate:
    """Mean over seeds with Student's t interval."""
    x = per_seed(scores)
    why = _no_spread(x)
    if why:
        return Estimate(float(x.mean()), None, None, len(x), why)
    low, high = t_interval(x, level)
    return Estimate(float(x.mean()), float(low), float(high), len(x))


def iqm_interval(scores: np.ndarray, rng: np.random.Generator, level: float = LEVEL, reps: int = REPS) -> Estimate:
    """IQM over seeds with a BCa bootstrap interval, from IQM_MIN_SEEDS seeds up (see the module docstring)."""
    x = per_seed(scores)
    value = float(scipy_stats.trim_mean(x, 0.25))
    why = f"fewer than {IQM_MIN_SEEDS} seeds" if len(x) < IQM_MIN_SEEDS else _no_spread(x)
    if why:
        return Estimate(value, None, None, len(x), why)
    low, high = bca_iqm_interval(x, rng, level, reps)
    if not (np.isfinite(low) and np.isfinite(high)):
        return Estimate(value, None, None, len(x), "the bootstrap could not form an interval")
    return Estimate(value, float(low), float(high), len(x))


@dataclass(frozen=True)
class Welch:
    """Welch's two-sided t-test of mean(x) − mean(y) and the interval of that difference, one scipy result."""

    difference: Estimate
    t: float
    p: float
    df: float


def welch_test(x: np.ndarray, y: np.ndarray, level: float = LEVEL) -> Welch | None:
    """None where the test does not apply (fewer than two seeds on a side, or no variance on either side)."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    if _no_spread(x, y):
        return None
    low, high, t, p, df = welch_interval(x, y, level)
    diff = Estimate(float(x.mean() - y.mean()), float(low), float(high), min(len(x), len(y)))
    return Welch(diff, float(t), float(p), float(df))


def difference(x: np.ndarray, y: np.ndarray, level: float = LEVEL) -> Estimate:
    """mean(x) − mean(y) with Welch's interval, or without one (and why) where Welch does not apply."""
    welch = welch_test(x, y, level)
    if welch is not None:
        return welch.difference
    x, y = per_seed(x, "x"), per_seed(y, "y")
    return Estimate(float(x.mean() - y.mean()), None, None, min(len(x), len(y)), _no_spread(x, y))


def improvement_interval(x: np.ndarray, y: np.ndarray, level: float = LEVEL) -> Estimate:
    """P(X > Y) with Newcombe's score interval (see :func:`newcombe_interval`)."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    theta = probability_of_improvement(x, y)
    low, high = newcombe_interval(np.array(theta), len(x), len(y), level)
    return Estimate(theta, float(low), float(high), min(len(x), len(y)))


def mean_band(curves: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean curve over seeds and its pointwise t interval from ``array[num_seeds, num_steps]`` (no band
    from one seed); where all seeds agree the band is zero-wide."""
    curves = as_scores(curves, "curves")
    centre = curves.mean(axis=0)
    if len(curves) < 2:
        return centre, None, None
    spread = scipy_stats.t.ppf(0.5 + level / 2, len(curves) - 1) * curves.std(axis=0, ddof=1) / math.sqrt(len(curves))
    return centre, centre - spread, centre + spread


@dataclass(frozen=True)
class EntropyFit:
    """R = −a·exp(H) + b (Cui et al., "The Entropy Mechanism of RL for Reasoning LMs", arXiv 2505.22617)."""

    a: float
    b: float
    r2: float
    points: int

    @property
    def ceiling(self) -> float:
        """Predicted performance when entropy is used up (H = 0): −a + b."""
        return self.b - self.a

    def predict(self, entropy: np.ndarray) -> np.ndarray:
        return -self.a * np.exp(entropy) + self.b


def entropy_fit(entropy: np.ndarray, performance: np.ndarray) -> EntropyFit | None:
    """Least squares fit (linear in a and b); None with fewer than 3 points or no spread in H."""
    h = np.asarray(entropy, dtype=np.float64).ravel()
    r = np.asarray(performance, dtype=np.float64).ravel()
    if h.shape != r.shape:
        raise ValueError(f"entropy and performance must pair up, got {h.shape} and {r.shape}")
    keep = np.isfinite(h) & np.isfinite(r)
    h, r = h[keep], r[keep]
    if h.size < 3 or np.ptp(h) == 0:
        return None
    design = np.column_stack([-np.exp(h), np.ones_like(h)])
    (a, b), *_ = np.linalg.lstsq(design, r, rcond=None)
    residual = r - design @ np.array([a, b])
    total = np.sum((r - r.mean()) ** 2)
    r2 = 1 - np.sum(residual**2) / total if total > 0 else 1.0
    return EntropyFit(float(a), float(b), float(r2), int(h.size))


# ---- paired comparisons, equivalence, what n can show (DESIGN.md, "Measuring a difference") -------------

WILCOXON_MIN_PAIRS = 6  # below this the signed-rank test cannot reach p < 0.05 (two-sided, exact: 2/2^5)


@dataclass(frozen=True)
class Difference:
    """mean(x) − mean(y) tested one way: paired by seed when both arms ran the same seeds, else Welch."""

    method: str  # "paired t" or "Welch"
    difference: Estimate  # its 95 % interval is the same scipy result as ``p``
    t: float
    p: float
    df: float
    wilcoxon_p: float | None = None  # signed-rank p on the pairs, from WILCOXON_MIN_PAIRS pairs


def difference_test(x: np.ndarray, y: np.ndarray, paired: bool, level: float = LEVEL) -> Difference | None:
    """Paired t (workbench.verdicts.paired_test; with WILCOXON_MIN_PAIRS pairs or more also ``scipy.stats.wilcoxon``)
    or Welch; None where no test applies (fewer than 2 seeds a side, or no spread to test against)."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    if not paired:
        welch = welch_test(x, y, level)
        return None if welch is None else Difference("Welch", welch.difference, welch.t, welch.p, welch.df)
    test = paired_test(x, y, None, level)
    if test is None:
        return None
    d = x - y
    wilcoxon = float(scipy_stats.wilcoxon(x, y).pvalue) if len(d) >= WILCOXON_MIN_PAIRS and np.any(d) else None
    return Difference("paired t", Estimate(test.difference, test.low, test.high, test.n), test.t, test.p, test.df,
                      wilcoxon)


def tost(x: np.ndarray, y: np.ndarray, margin: float, paired: bool) -> float | None:
    """Two one-sided tests of |mean(x) − mean(y)| < margin (Schuirmann): p < α says "matches" (equivalently, the
    1 − 2α interval lies inside ±margin); paired (workbench.verdicts.paired_test) or Welch (``statsmodels``'
    ``ttost_ind``). None where no test applies (fewer than 2 seeds a side, or no spread)."""
    from statsmodels.stats.weightstats import ttost_ind

    x, y = per_seed(x, "x"), per_seed(y, "y")
    if margin <= 0:
        raise ValueError(f"equivalence margin must be positive, got {margin}")
    if paired:
        if len(x) != len(y):
            return None
        test = paired_test(x, y, margin)
        return None if test is None else test.tost_p
    if _no_spread(x, y):
        return None
    with _constant_arms_allowed():
        return float(ttost_ind(x, y, -margin, margin, usevar="unequal")[0])


def _spread(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, float] | None:
    """(standard error of the difference per √n seeds, i.e. its SD at n = 1, and df per seed) for planning."""
    if paired:
        sd = float(np.std(x - y, ddof=1))
        return (sd, 1.0) if sd > 0 else None
    vx, vy = float(np.var(x, ddof=1)), float(np.var(y, ddof=1))
    if vx + vy == 0:
        return None
    return math.sqrt(vx + vy), (vx + vy) ** 2 / (vx**2 + vy**2)  # Welch–Satterthwaite df is (n − 1) × this


def minimum_detectable_effect(x: np.ndarray, y: np.ndarray, paired: bool, power: float = POWER,
                              alpha: float = ALPHA) -> float | None:
    """Planning figure: the smallest true difference a two-sided test at ``alpha`` on these seeds would detect
    with ``power``, at the observed spread: paired, statsmodels' ``TTestPower`` times the SD of the differences;
    Welch, a root search on the noncentral t (statsmodels' two-sample power assumes equal variances). None with
    fewer than 2 seeds a side or no spread."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    n = min(len(x), len(y))
    spread = _spread(x, y, paired) if n >= 2 else None
    if spread is None:
        return None
    sd, df_per = spread
    if paired:
        from statsmodels.stats.power import TTestPower

        return float(TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided")) * sd
    df = max((n - 1) * df_per, 1.0)
    se = sd / math.sqrt(n)
    crit = scipy_stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        shift = effect / se
        achieved = scipy_stats.nct.sf(crit, df, shift) + scipy_stats.nct.cdf(-crit, df, shift)
        if not np.isfinite(achieved):  # scipy's nct fails far in the tail, where t is normal anyway
            achieved = scipy_stats.norm.sf(crit - shift) + scipy_stats.norm.cdf(-crit - shift)
        return float(achieved) - power

    top = se
    while shortfall(top) < 0:
        top *= 2
    return float(brentq(shortfall, 0.0, top))


def seeds_for_margin(x: np.ndarray, y: np.ndarray, margin: float, paired: bool, power: float = POWER,
                     alpha: float = ALPHA) -> float | None:
    """Planning figure: seeds per arm at which TOST at ``alpha`` would show equivalence within ±margin with
    ``power`` if the true difference were 0, at the observed spread (the usual central-t approximation,
    power ≈ 2·F_t(margin/se − t_crit) − 1, as in Chow et al.'s sample-size tables; scipy has no TOST planner);
    inf beyond MAX_SEEDS, None without spread."""
    x, y = per_seed(x, "x"), per_seed(y, "y")
    spread = _spread(x, y, paired) if min(len(x), len(y)) >= 2 else None
    if spread is None:
        return None
    sd, df_per = spread

    def achieved(n: int) -> float:
        df = max((n - 1) * df_per, 1.0)
        return 2 * float(scipy_stats.t.cdf(margin / (sd / math.sqrt(n)) - scipy_stats.t.ppf(1 - alpha, df), df)) - 1

    if achieved(MAX_SEEDS) < power:
        return math.inf
    low, high = 1, MAX_SEEDS
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if achieved(middle) >= power else (middle, high)
    return float(high)
