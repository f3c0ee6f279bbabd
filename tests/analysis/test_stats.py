"""The statistics on inputs whose answers are known, and the coverage of every interval by simulation.

Coverage: 1,000 simulated experiments of normal seed scores per case; a 95 % interval should hold the
true value in 93–97 % of them (the binomial spread of 1,000 draws at 0.95 is ±0.7 %). Where the module
docstring says an interval behaves otherwise at small n, the test checks that statement instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from workbench.analysis import stats

EXPERIMENTS = 1000


def test_iqm_of_a_known_array():
    assert stats.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([[1.0, 100.0], [2.0, 3.0]]) == pytest.approx(2.5)  # runs × tasks pooled: mean of 2, 3
    draws = np.random.default_rng(1).normal(size=(37, 3))
    assert stats.iqm(draws) == pytest.approx(scipy_stats.trim_mean(draws.ravel(), 0.25))


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.zeros((0, 1)), [1.0, np.nan]])
def test_shapes_and_values_are_validated(bad):
    with pytest.raises(ValueError, match="scores"):
        stats.mean(bad)


def _covered(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_mean_interval_covers_95_percent(seeds):
    x = np.random.default_rng(seeds).normal(0.4, 0.05, (EXPERIMENTS, seeds))
    assert 0.93 <= _covered(*stats.t_interval(x), 0.4) <= 0.97
    one = stats.mean_interval(x[0])  # the per-arm estimate is this interval
    assert (one.low, one.high) == pytest.approx(tuple(float(v) for v in stats.t_interval(x[0])))


@pytest.mark.parametrize("seeds, band", [(3, (0.94, 0.98)), (5, (0.93, 0.97)), (10, (0.93, 0.97))])
@pytest.mark.parametrize("spreads", [(0.05, 0.05), (0.02, 0.08)])
def test_difference_interval_covers_95_percent(seeds, band, spreads):
    """Welch's interval of mean(x) − mean(y), equal and unequal spreads; at 3 seeds it errs on the safe side
    (96.5 % with equal spreads, measured over 100,000 experiments), as the report's note says."""
    rng = np.random.default_rng(seeds)
    x, y = rng.normal(0.45, spreads[0], (EXPERIMENTS, seeds)), rng.normal(0.40, spreads[1], (EXPERIMENTS, seeds))
    low, high, *_ = stats.welch_interval(x, y)
    assert band[0] <= _covered(low, high, 0.05) <= band[1]
    one = stats.difference(x[0], y[0])
    assert (one.low, one.high) == pytest.approx((float(low[0]), float(high[0])))


@pytest.mark.parametrize("seeds, band", [(3, (0.88, 0.98)), (5, (0.93, 0.98)), (10, (0.93, 0.98))])
@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_improvement_interval_coverage_is_what_the_report_says(seeds, band, shift):
    """Newcombe's interval of P(X > Y): 90–97 % at 3 seeds per arm, 94–97 % from 5 (the report's note),
    checked with margins for 1,000 draws. True P(X > Y) for N(shift, 1) against N(0, 1) is Φ(shift/√2)."""
    rng = np.random.default_rng(seeds)
    x, y = rng.normal(shift, 1, (EXPERIMENTS, seeds)), rng.normal(0, 1, (EXPERIMENTS, seeds))
    theta = np.mean(x[:, :, None] > y[:, None, :], axis=(1, 2))
    low, high = stats.newcombe_interval(theta, seeds, seeds)
    assert band[0] <= _covered(low, high, scipy_stats.norm.cdf(shift / math.sqrt(2))) <= band[1]
    one = stats.improvement_interval(x[0], y[0])
    assert (one.value, one.low, one.high) == pytest.approx((theta[0], low[0], high[0]))


def test_improvement_interval_stays_open_when_every_pair_agrees():
    """3 seeds that all beat 3 others: P = 1, but 3 × 3 pairs cannot make it certain (a bootstrap says [1, 1])."""
    e = stats.improvement_interval([0.5, 0.6, 0.7], [0.1, 0.2, 0.3])
    assert e.value == 1.0 and e.high == 1.0 and 0.4 < e.low < 0.9
    same = stats.improvement_interval([0.5, 0.5], [0.5, 0.5])
    assert same.value == 0.5 and same.low < 0.2 and same.high > 0.8


def test_iqm_interval_from_ten_seeds_covers_and_below_is_not_given():
    rng = np.random.default_rng(0)
    low, high = stats.bca_iqm_interval(rng.normal(0.4, 0.05, (EXPERIMENTS, 10)), rng, reps=1000)
    assert 0.91 <= _covered(low, high, 0.4) <= 0.97  # ~94 %, as the module docstring says
    nine = rng.normal(0.4, 0.05, 9)
    few = stats.iqm_interval(nine, rng)
    assert not few.has_interval and few.why == "fewer than 10 seeds"
    assert few.value == pytest.approx(scipy_stats.trim_mean(nine, 0.25))
    ten = stats.iqm_interval(rng.normal(0.4, 0.05, 10), rng)
    assert ten.low < ten.value < ten.high


def test_no_degenerate_interval_is_given():
    one = stats.mean_interval([0.3])
    assert (one.low, one.high, one.why) == (None, None, "1 seed")
    same = stats.mean_interval([0.3, 0.3, 0.3])
    assert not same.has_interval and same.why == "every seed scored the same"
    assert stats.welch_test([0.3], [0.5, 0.6]) is None and stats.welch_test([0.3, 0.3], [0.5, 0.5]) is None
    d = stats.difference([0.3, 0.3], [0.5, 0.5])
    assert d.value == pytest.approx(-0.2) and not d.has_interval and not d.excludes(0)


def test_welch_matches_scipy_and_its_interval_agrees_with_its_p():
    x, y = np.array([0.1, 0.4, 0.35, 0.2]), np.array([0.5, 0.55, 0.7])
    expected = scipy_stats.ttest_ind(x, y, equal_var=False)
    result = stats.welch_test(x, y)
    assert result.p == pytest.approx(expected.pvalue) and result.t == pytest.approx(expected.statistic)
    rng = np.random.default_rng(2)
    for n in (2, 3, 5, 10):
        low, high, _, p, _ = stats.welch_interval(rng.normal(rng.normal(0, 0.05, (500, 1)), 0.05, (500, n)),
                                                  rng.normal(0, 0.05, (500, n)))
        assert np.array_equal((low > 0) | (high < 0), p < 0.05)


def test_mean_band_is_the_t_interval_at_each_step():
    curves = np.random.default_rng(4).normal(size=(4, 6))
    centre, low, high = stats.mean_band(curves)
    ci = scipy_stats.ttest_1samp(curves, 0.0, axis=0).confidence_interval()
    assert np.allclose(centre, curves.mean(axis=0)) and np.allclose(low, ci.low) and np.allclose(high, ci.high)
    assert stats.mean_band(curves[:1])[1] is None


def test_probability_of_improvement():
    assert stats.probability_of_improvement([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert stats.probability_of_improvement([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert stats.probability_of_improvement([0.0, 2.0], [1.0]) == 0.5


def test_entropy_fit_recovers_the_law_and_its_ceiling():
    h = np.linspace(0.2, 1.5, 12)
    fit = stats.entropy_fit(h, -0.3 * np.exp(h) + 0.9)
    assert fit.a == pytest.approx(0.3) and fit.b == pytest.approx(0.9) and fit.r2 == pytest.approx(1.0)
    assert fit.ceiling == pytest.approx(0.6)
    assert stats.entropy_fit([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) is None
