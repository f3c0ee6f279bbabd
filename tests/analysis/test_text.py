"""The summary's claims agree with each other and with the number of seeds, on many simulated comparisons."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import text
from workbench.analysis.compare import Comparison, compare_arms

SWEEP = SimpleNamespace(metric="eval/accuracy")  # all the headline reads of a sweep


def comparison(scores: dict[str, np.ndarray]) -> Comparison:
    arms, lead, base = compare_arms(scores, {a: a for a in scores}, "grpo", np.random.default_rng(0), reps=200)
    return Comparison(base, arms, lead, {}, pd.DataFrame())


def cases(count: int):
    """Two-arm sweeps from 1 to 10 seeds, gaps from none to large, some with seeds that agree exactly."""
    rng = np.random.default_rng(11)
    for i in range(count):
        n, m = rng.integers(1, 11, size=2)
        gap = rng.choice([0.0, 0.01, 0.05, 0.2])
        x, y = rng.normal(0.4 + gap, 0.04, n).round(3), rng.normal(0.4, 0.04, m).round(3)
        if i % 17 == 0:
            x = np.full(n, 0.4)
        yield {"drpo": x, "grpo": y}


def test_the_summary_never_contradicts_its_test():
    seen = set()
    for scores in cases(300):
        c = comparison(scores)
        other = next(a for a in c.arms if a.arm != "grpo")
        sentence = text.headline(SWEEP, c)
        if "excludes 0" in sentence:
            assert other.welch is not None and other.welch.p < 0.05, sentence
            assert other.difference.excludes(0)
            seen.add("resolved")
        if "contains 0" in sentence:
            assert other.welch is not None and other.welch.p >= 0.05, sentence
            assert not other.difference.excludes(0)
            seen.add("unresolved")
        if other.welch is None:
            assert "No Welch test" in sentence and "excludes" not in sentence and "contains 0" not in sentence
            seen.add("no test")
        # An interval printed in the sentence is never a point.
        for low, high in re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", sentence):
            assert float(low) < float(high), sentence
    assert seen == {"resolved", "unresolved", "no test"}


def test_one_seed_and_identical_seeds_get_no_interval():
    c = comparison({"drpo": np.array([0.5]), "grpo": np.array([0.4, 0.42, 0.41])})
    sentence = text.headline(SWEEP, c)
    assert "no interval: 1 seed" in sentence and "No Welch test (1 seed)" in sentence
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


def test_unresolved_difference_names_the_seeds_it_would_need():
    rng = np.random.default_rng(3)
    c = comparison({"drpo": rng.normal(0.42, 0.05, 3), "grpo": rng.normal(0.40, 0.05, 3)})
    other = next(a for a in c.arms if a.arm == "drpo")
    sentence = text.headline(SWEEP, c)
    assert other.welch.p >= 0.05 and "contains 0" in sentence
    assert f"about {other.seeds_needed:,.0f} seeds per arm" in sentence and other.seeds_needed > 3
