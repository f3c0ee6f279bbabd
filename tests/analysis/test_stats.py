"""The statistics on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from workbench.analysis import stats


def test_iqm_of_a_known_array():
    assert stats.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([[1.0, 100.0], [2.0, 3.0]]) == pytest.approx(2.5)  # runs × tasks pooled: mean of 2, 3
    draws = np.random.default_rng(1).normal(size=(37, 3))
    assert stats.iqm(draws) == pytest.approx(scipy_stats.trim_mean(draws.ravel(), 0.25))


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.zeros((0, 1)), [1.0, np.nan]])
def test_shapes_and_values_are_validated(bad):
    with pytest.raises(ValueError, match="scores"):
        stats.mean(bad)


def test_interval_coverage_on_normal_data():
    """About 95 % of the intervals of the mean hold the true mean (percentile bootstrap, 30 seeds)."""
    rng = np.random.default_rng(0)
    hits = 0
    experiments = 400
    for _ in range(experiments):
        low, high = stats.bootstrap_ci(stats.mean, (rng.normal(2.0, 1.0, 30),), rng, reps=1000)
        hits += low <= 2.0 <= high
    assert 0.90 <= hits / experiments <= 0.98


def test_interval_holds_the_estimate_and_narrows_with_seeds():
    draws = np.random.default_rng(3).normal(0.5, 0.1, 200)
    widths = []
    for seeds in (3, 10, 50, 200):
        estimate = stats.interval_estimates({"x": draws[:seeds]}, stats.mean, np.random.default_rng(0))["x"]
        assert estimate.low <= estimate.value <= estimate.high and estimate.seeds == seeds
        widths.append(estimate.high - estimate.low)
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 4


def test_the_generator_decides_the_interval():
    x = np.random.default_rng(5).normal(size=8)
    same = [stats.bootstrap_ci(stats.iqm, (x,), np.random.default_rng(7)) for _ in range(2)]
    assert same[0] == same[1]
    assert stats.bootstrap_ci(stats.iqm, (x,), np.random.default_rng(8)) != same[0]


def test_seeds_are_resampled_within_each_task():
    """Task 0 is always 0 and task 1 always 1: a stratified resample keeps every task's mean exactly."""
    scores = np.column_stack([np.zeros(6), np.ones(6)])
    low, high = stats.bootstrap_ci(lambda s: s.mean(axis=1)[:, 1], (scores,), np.random.default_rng(0))
    assert low == high == 1.0


def test_probability_of_improvement():
    assert stats.probability_of_improvement([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert stats.probability_of_improvement([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert stats.probability_of_improvement([0.0, 2.0], [1.0]) == 0.5


def test_welch_matches_scipy_and_declines_without_variance():
    x, y = np.array([0.1, 0.4, 0.35, 0.2]), np.array([0.5, 0.55, 0.7])
    expected = scipy_stats.ttest_ind(x, y, equal_var=False)
    result = stats.welch_test(x, y)
    assert result.p == pytest.approx(expected.pvalue) and result.t == pytest.approx(expected.statistic)
    assert stats.welch_test([0.3], y) is None
    assert stats.welch_test([0.3, 0.3], [0.5, 0.5]) is None


def test_entropy_fit_recovers_the_law_and_its_ceiling():
    h = np.linspace(0.2, 1.5, 12)
    fit = stats.entropy_fit(h, -0.3 * np.exp(h) + 0.9)
    assert fit.a == pytest.approx(0.3) and fit.b == pytest.approx(0.9) and fit.r2 == pytest.approx(1.0)
    assert fit.ceiling == pytest.approx(0.6)
    assert stats.entropy_fit([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) is None
