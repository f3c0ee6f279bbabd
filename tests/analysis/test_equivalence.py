"""Paired differences, equivalence (TOST), verdict words and planning figures: against scipy and by hand on fixed
data, TOST's false "matches" rate by simulation, the four words on hand-made cases, the named baseline."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from workbench import verdicts
from workbench.analysis import stats, text
from workbench.analysis.compare import Comparison, choose_baseline, compare_arms
from workbench.config import ConfigError

# Fixed data: five seeds of two arms that share the seeds (a seed effect both arms carry).
X = np.array([0.301, 0.276, 0.334, 0.290, 0.312])
Y = np.array([0.295, 0.281, 0.322, 0.281, 0.309])


def test_paired_interval_is_the_textbook_one_and_scipys():
    result = stats.difference_test(X, Y, paired=True)
    d = X - Y
    half = scipy_stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert result.method == "paired t" and result.df == len(d) - 1
    assert (result.difference.low, result.difference.high) == pytest.approx((d.mean() - half, d.mean() + half))
    reference = scipy_stats.ttest_rel(X, Y)
    assert result.p == pytest.approx(reference.pvalue) and result.t == pytest.approx(reference.statistic)
    # Pairing removes the seed effect: the paired interval is far narrower than Welch's on the same numbers.
    welch = stats.difference_test(X, Y, paired=False)
    assert welch.method == "Welch" and result.difference.high - result.difference.low < \
        0.5 * (welch.difference.high - welch.difference.low)
    assert result.wilcoxon_p is None  # 5 pairs: below WILCOXON_MIN_PAIRS
    six = stats.difference_test(np.append(X, 0.3), np.append(Y, 0.31), paired=True)
    assert six.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(np.append(X, 0.3), np.append(Y, 0.31)).pvalue)


@pytest.mark.parametrize("paired", [True, False])
def test_tost_is_the_larger_one_sided_p_and_agrees_with_the_90_percent_interval(paired):
    margin = 0.02
    p = stats.tost(X, Y, margin, paired)
    if paired:
        d = X - Y
        se = d.std(ddof=1) / math.sqrt(len(d))
        df = len(d) - 1
        by_hand = max(scipy_stats.t.sf((d.mean() + margin) / se, df), scipy_stats.t.cdf((d.mean() - margin) / se, df))
        interval = scipy_stats.ttest_rel(X, Y).confidence_interval(0.90)
    else:
        vx, vy = X.var(ddof=1) / len(X), Y.var(ddof=1) / len(Y)
        se, df = math.sqrt(vx + vy), (vx + vy) ** 2 / (vx**2 / (len(X) - 1) + vy**2 / (len(Y) - 1))
        gap = X.mean() - Y.mean()
        by_hand = max(scipy_stats.t.sf((gap + margin) / se, df), scipy_stats.t.cdf((gap - margin) / se, df))
        interval = scipy_stats.ttest_ind(X, Y, equal_var=False).confidence_interval(0.90)
    assert p == pytest.approx(by_hand)
    inside = -margin < interval.low and interval.high < margin
    assert (p < 0.05) == inside
    for tighter in (0.002, 0.005, 0.01, 0.05):  # the same agreement at other margins, passing and failing
        q = stats.tost(X, Y, tighter, paired)
        assert (q < 0.05) == (-tighter < interval.low and interval.high < tighter)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n", [5, 10])
@pytest.mark.parametrize("sd", [0.01, 0.03])
def test_tost_says_matches_at_most_5_percent_of_the_time_when_the_true_difference_is_the_margin(paired, n, sd):
    margin, experiments = 0.02, 20000
    rng = np.random.default_rng(n * 100 + int(sd * 1000) + paired)
    seed_effect = rng.normal(0, 0.03, (experiments, n))  # shared by both arms when paired
    x = 0.3 + margin + (seed_effect if paired else rng.normal(0, 0.03, (experiments, n))) + rng.normal(0, sd, (experiments, n))
    y = 0.3 + seed_effect + rng.normal(0, sd, (experiments, n))
    p = closed_form_tost(x, y, margin, paired)
    rate = float(np.mean(p < 0.05))
    assert [stats.tost(a, b, margin, paired) for a, b in zip(x[:50], y[:50])] == pytest.approx(p[:50])
    # The size of TOST at the margin is at most α; allow the simulation's own error (2 SE of 20,000 draws at 5%).
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / experiments), rate
    if paired and sd == 0.01 and n == 10:
        assert rate > 0.03  # the test is not vacuous: near the bound when the spread is small against the margin


def closed_form_tost(x, y, margin, paired):
    """TOST's p over the last axis by the textbook formulas (vectorised: the simulation's 20,000 experiments at once)."""
    if paired:
        d = x - y
        se, df, gap = d.std(axis=-1, ddof=1) / math.sqrt(d.shape[-1]), d.shape[-1] - 1, d.mean(axis=-1)
    else:
        vx, vy = x.var(axis=-1, ddof=1) / x.shape[-1], y.var(axis=-1, ddof=1) / y.shape[-1]
        se = np.sqrt(vx + vy)
        df = (vx + vy) ** 2 / (vx**2 / (x.shape[-1] - 1) + vy**2 / (y.shape[-1] - 1))
        gap = x.mean(axis=-1) - y.mean(axis=-1)
    return np.maximum(scipy_stats.t.sf((gap + margin) / se, df), scipy_stats.t.cdf((gap - margin) / se, df))


def _comparison(scores, seeds=None, margin=0.02):
    every = tuple(sorted({s for arm_seeds in (seeds or {}).values() for s in arm_seeds})) or tuple(range(10))
    arms, lead, base = compare_arms(scores, {a: a.split()[0] for a in scores}, "grpo", np.random.default_rng(0),
                                    reps=200, plan=verdicts.Plan(every, (len(every),), margin=margin), seeds=seeds)
    return Comparison(base, arms, lead, {}, pd.DataFrame(), margin=margin, baseline_source="--baseline")


def test_verdict_words_on_hand_made_cases():
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 0.03, 10)
    seeds = {a: tuple(range(10)) for a in ("grpo", "same", "up", "down")}
    scores = {"grpo": 0.3 + seed_effect + rng.normal(0, 0.003, 10),
              "same": 0.3 + seed_effect + rng.normal(0, 0.003, 10),
              "up": 0.35 + seed_effect + rng.normal(0, 0.003, 10),
              "down": 0.25 + seed_effect + rng.normal(0, 0.003, 10)}
    c = _comparison(scores, seeds)
    words = {a.arm: a.verdict for a in c.arms if a.arm != "grpo"}
    assert words == {"same": "matches", "up": "better", "down": "worse"}
    assert all(c.result(a).test.method == "paired t" for a in words)
    # Two seeds with seed-to-seed noise: the means are close but nothing can be shown either way.
    tiny = _comparison({"grpo": np.array([0.30, 0.33]), "same": np.array([0.31, 0.30])},
                       {"grpo": (0, 1), "same": (0, 1)})
    assert tiny.result("same").verdict == "not resolved"
    # An arm that ran fewer seeds (a failed run) is paired on the seeds both ran; arms sharing none, by Welch.
    fewer = _comparison({"grpo": scores["grpo"], "same": scores["same"][:8]},
                        {"grpo": tuple(range(10)), "same": tuple(range(8))})
    assert fewer.result("same").test.method == "paired t" and fewer.result("same").compared == 8
    apart = _comparison({"grpo": scores["grpo"][:5], "same": scores["same"][5:]},
                        {"grpo": tuple(range(5)), "same": tuple(range(5, 10))})
    assert apart.result("same").test.method == "Welch" and apart.result("same").verdict == "not resolved"
    sentence = text.headline(SimpleNamespace(metric="eval/p_correct"), c)
    assert "same **matches**" in sentence and "up **better**" in sentence and "down **worse**" in sentence
    bold = {w for w in sentence.split("**")[1::2] if w != "grpo"}
    assert bold <= set(verdicts.VERDICTS)


def test_planning_figures():
    # MDE: at the returned effect, a paired test on these 5 seeds has 80 % power (by simulation).
    mde = stats.minimum_detectable_effect(X, Y, paired=True)
    sd = np.std(X - Y, ddof=1)
    rng = np.random.default_rng(2)
    d = rng.normal(mde, sd, (4000, 5))
    power = np.mean(scipy_stats.ttest_1samp(d, 0, axis=1).pvalue < 0.05)
    assert 0.77 < power < 0.83
    # Seeds for the margin: more seeds for a tighter margin; none can be planned without spread.
    assert stats.seeds_for_margin(X, Y, 0.005, True) > stats.seeds_for_margin(X, Y, 0.02, True)
    assert stats.seeds_for_margin(np.full(3, 0.3), np.full(3, 0.3), 0.02, False) is None


def _sweep(arms, spec_baseline=None, space=None):
    trials = pd.DataFrame([{"objective": o, "arm": a, "delta": d, **(extra[0] if extra else {})}
                           for o, a, d, *extra in arms])
    return SimpleNamespace(name="s", trials=trials, params=list(trials.columns),
                           spec=SimpleNamespace(baseline=spec_baseline, space=space or {}))


def test_the_baseline_is_named_never_picked():
    sweep = _sweep([("grpo", "grpo", None), ("drpo", "drpo (δ=0.05)", 0.05), ("drpo", "drpo (δ=0.15)", 0.15)])
    assert choose_baseline(sweep, None)[0] == ("grpo",)  # the default: the single grpo arm
    assert choose_baseline(sweep, "drpo delta=0.15") == (("drpo (δ=0.15)",), "--baseline")
    assert choose_baseline(sweep, "drpo δ=0.05")[0] == ("drpo (δ=0.05)",)
    assert choose_baseline(sweep, "drpo (δ=0.05)")[0] == ("drpo (δ=0.05)",)
    with pytest.raises(ConfigError, match=r"2 arms fit.*drpo \(δ=0\.05\); drpo \(δ=0\.15\)"):
        choose_baseline(sweep, "drpo")
    with pytest.raises(ConfigError, match="not an arm"):
        choose_baseline(sweep, "ppo")
    with pytest.raises(ConfigError, match="no arm has that setting"):
        choose_baseline(sweep, "drpo delta=0.3")
    named = _sweep([("grpo", "grpo", None), ("pg", "pg", None)], spec_baseline="pg")
    assert choose_baseline(named, None) == (("pg",), "the sweep file's baseline:")
    two_grpo = _sweep([("grpo", "grpo (δ=1)", 1.0), ("grpo", "grpo (δ=2)", 2.0)])
    assert choose_baseline(two_grpo, None) == ((), "")


def test_a_baseline_per_setting_compares_each_arm_within_its_setting():
    """stress.yaml: the space sets the arms in settings; 'grpo' names plain grpo in each, the corrected grpo arms
    are compared with it, and no arm is compared across settings."""
    rows = [("grpo", f"grpo{c} (p={p})", None, {"p": p, "correction": corr})
            for p in ("bf16", "int4") for c, corr in (("", None), (" + tis", "tis@verl_fp8"))]
    rows += [("drpo", f"drpo (p={p})", 0.15, {"p": p}) for p in ("bf16", "int4")]
    sweep = _sweep(rows, spec_baseline="grpo", space={"p": {"values": ["bf16", "int4"]}})
    assert choose_baseline(sweep, None) == (("grpo (p=bf16)", "grpo (p=int4)"), "the sweep file's baseline:")
    with pytest.raises(ConfigError, match="4 arms fit"):  # without a space there is no setting to pair them in
        choose_baseline(_sweep(rows, spec_baseline="grpo"), None)
    setting_of = {a: f"p={a.split('p=')[1][:-1]}" for _, a, *_ in rows}
    scores = {a: np.array([0.3, 0.31, 0.29]) + (0.1 if "int4" in a and a.startswith("drpo") else 0) for a in setting_of}
    arms, _, base = compare_arms(scores, {a: a.split()[0] for a in scores}, ("grpo (p=bf16)", "grpo (p=int4)"),
                                 np.random.default_rng(0), reps=200, seeds={a: (0, 1, 2) for a in scores},
                                 setting_of=setting_of)
    assert base == ("grpo (p=bf16)", "grpo (p=int4)")
    by_arm = {a.arm: a for a in arms}
    assert by_arm["drpo (p=int4)"].baseline == "grpo (p=int4)" and by_arm["grpo + tis (p=bf16)"].baseline == "grpo (p=bf16)"
    assert by_arm["drpo (p=int4)"].difference.value == pytest.approx(0.1)  # not 0.1 against bf16's own grpo
    assert by_arm["grpo (p=int4)"].baseline is None and by_arm["grpo (p=int4)"].verdict is None
    assert [a.setting for a in arms] == ["p=bf16"] * 3 + ["p=int4"] * 3  # grouped by setting


def test_a_sweep_whose_runs_came_from_different_machines_is_flagged(tmp_path):
    import json

    from workbench.analysis.compare import _machine_note
    from workbench.tracking import machine

    here = machine()
    assert here["cpu_capability"] and here["threads"] >= 1 and here["torch"]
    elsewhere = {**here, "cpu_capability": "AVX2", "cpu": "another CPU"}
    for run, where in (("a", here), ("b", here), ("c", elsewhere)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "summary.json").write_text(json.dumps({"machine": where}))
    sweep = SimpleNamespace(folder=tmp_path, finished=pd.DataFrame({"run": ["a", "b"]}))
    assert _machine_note(sweep) is None
    sweep.finished = pd.DataFrame({"run": ["a", "b", "c"]})
    note = _machine_note(sweep)
    assert note.startswith("The runs came from 2 different machines") and "AVX2" in note and "fresh draw" in note
