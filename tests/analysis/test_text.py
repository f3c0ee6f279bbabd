"""The summary's claims agree with each other and with the number of seeds, on many simulated comparisons."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workbench import verdicts
from workbench.analysis import text
from workbench.analysis.compare import Comparison, compare_arms

SWEEP = SimpleNamespace(metric="eval/accuracy")  # all the headline reads of a sweep


def comparison(scores: dict[str, np.ndarray]) -> Comparison:
    arms, lead, base = compare_arms(scores, {a: a for a in scores}, "grpo", np.random.default_rng(0), reps=200)
    return Comparison(base, arms, lead, {}, pd.DataFrame())


def cases(count: int):
    """Two-arm sweeps from 1 to 10 seeds, gaps from none to large (and below), some with seeds that agree exactly."""
    rng = np.random.default_rng(11)
    for i in range(count):
        n, m = rng.integers(1, 11, size=2)
        gap = rng.choice([0.0, 0.01, 0.05, 0.2, -0.2])
        sd = rng.choice([0.04, 0.004])  # a small spread lets a zero gap be shown within the margin
        x, y = rng.normal(0.4 + gap, sd, n).round(3), rng.normal(0.4, sd, m).round(3)
        if i % 17 == 0:
            x = np.full(n, 0.4)
        yield {"drpo": x, "grpo": y}


def test_the_summary_never_contradicts_its_test():
    seen = set()
    for scores in cases(300):
        c = comparison(scores)
        other = next(a for a in c.arms if a.arm != "grpo")
        sentence = text.headline(SWEEP, c)
        words = [w for w in sentence.split("**")[1::2] if w not in ("grpo", "drpo")]
        assert words == [other.verdict] and other.verdict in verdicts.VERDICTS, sentence
        # One comparison, one look: the adjusted p is the test's own, so the verdict and the interval agree.
        if other.verdict.split(",")[0] in ("better", "worse"):
            assert other.test is not None and other.p_adjusted < 0.05 and other.difference.excludes(0), sentence
            assert (other.difference.value > 0) == other.verdict.startswith("better")
        if other.verdict in ("matches", "better, within margin", "worse, within margin"):
            assert other.tost_p_adjusted < 0.05
        if other.verdict == "not resolved":
            assert other.test is None or (other.test.p >= 0.05 and not other.difference.excludes(0))
            assert other.tost_p is None or other.tost_p >= 0.05
        if other.test is None:
            assert "no test" in sentence
        seen.add(other.verdict if other.test is not None else "no test")
        # An interval printed in the sentence is never a point.
        for low, high in re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", sentence):
            assert float(low) < float(high), sentence
    assert {"better", "worse", "matches", "not resolved", "no test"} <= seen <= {*verdicts.VERDICTS, "no test"}


def test_one_seed_and_identical_seeds_get_no_interval():
    c = comparison({"drpo": np.array([0.5]), "grpo": np.array([0.4, 0.42, 0.41])})
    sentence = text.headline(SWEEP, c)
    assert "no interval: 1 seed" in sentence and "drpo **not resolved** (mean 0.500" in sentence and "no test: 1 seed" in sentence
    rows = text.results_frame(c).set_index("arm")
    assert np.isnan(rows.loc["drpo", "mean_low"]) and np.isnan(rows.loc["drpo", "diff_low"])
    same = comparison({"drpo": np.full(3, 0.5), "grpo": np.full(3, 0.4)})
    assert "no interval: every seed scored the same" in text.headline(SWEEP, same)


@pytest.mark.parametrize("seeds, warned", [(3, True), (5, False)])
def test_few_seeds_are_stated(seeds, warned):
    rng = np.random.default_rng(seeds)
    c = comparison({"drpo": rng.normal(0.5, 0.05, seeds), "grpo": rng.normal(0.4, 0.05, 6)})
    sentence = text.few_seeds_sentence(c)
    assert (sentence is not None) == warned
    if warned:
        assert f"drpo ({seeds})" in sentence and "grpo" not in sentence


def test_unresolved_difference_gives_planning_figures_not_post_hoc_power():
    rng = np.random.default_rng(3)
    c = comparison({"drpo": rng.normal(0.42, 0.05, 3), "grpo": rng.normal(0.40, 0.05, 3)})
    other = next(a for a in c.arms if a.arm == "drpo")
    sentence = text.headline(SWEEP, c)
    assert other.verdict == "not resolved" and "drpo **not resolved**" in sentence
    assert f"MDE {text._num(other.mde)}" in sentence and other.mde > abs(other.difference.value)
    row = text.results_frame(c).set_index("arm").loc["drpo"]
    assert row["seeds_for_margin"] > 3 and row["verdict"] == "not resolved" and row["test"] == "paired t"  # paired on the seeds both ran


@pytest.mark.parametrize("seed, holds", [(1, True), (4, False)])
def test_the_outlier_check_is_stated_for_each_resolved_verdict(seed, holds):
    rng = np.random.default_rng(seed)
    y = rng.normal(0.4, 0.05, 10)
    c = comparison({"drpo": y + rng.normal(0.03, 0.03, 10), "grpo": y})
    drpo = next(a for a in c.arms if a.arm == "drpo")
    assert drpo.verdict == "better" and drpo.outlier.survives == holds
    sentence = text.outlier_sentence(c)
    assert sentence.startswith(f"Outliers: {int(holds)} of 1 resolved") and (("drpo (better" in sentence) != holds)
    table = text.outlier_section(c)[-1]
    assert [row[1] for row in table.rows] == ["drpo"] and ("holds without" in table.rows[0][-1]) == holds
    row = text.results_frame(c).set_index("arm").loc["drpo"]
    assert row.loo_tried == 10 and (row.loo_changed == 0) == holds and (row.loo_p < 0.05) == holds
