"""Verdicts over looks and families (workbench.verdicts): the O'Brien–Fleming design against published constants and
scipy's multivariate normal, the tests against scipy and statsmodels, and the whole procedure by simulation: at every
look, with the family correction on, false better/worse ≤ 5% when nothing differs and false matches ≤ 5% when the true
difference is at the margin.

    python -m pytest tests/test_verdicts.py -q -s   # prints the simulated error rates at each look
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from workbench import verdicts
from workbench.verdicts import Pair, Plan, decide


def test_obrien_fleming_constants_are_the_published_ones():
    """Jennison & Turnbull, Table 2.3: C_B(K, α = 0.05) = 1.960, 1.977, 2.004, 2.024, 2.040 for K = 1 … 5."""
    for k, published in zip(range(1, 6), (1.960, 1.977, 2.004, 2.024, 2.040)):
        fractions = np.arange(1, k + 1) / k
        assert verdicts.crossing_probability(published, fractions) == pytest.approx(0.05, abs=3e-4)
    # The nominal p at each of 5 looks: 5e-6, 0.0013, 0.0085, 0.0226, 0.0414 (two-sided).
    nominal = verdicts.boundary(np.arange(1, 6) / 5)
    assert nominal == pytest.approx([5.1e-6, 0.00126, 0.00845, 0.0226, 0.0413], rel=0.02)
    assert verdicts.boundary([1.0]) == pytest.approx([0.05])


@pytest.mark.parametrize("two_sided", [True, False])
def test_the_crossing_integral_is_scipys_multivariate_normal(two_sided):
    fractions = np.array([0.25, 0.5, 0.8, 1.0])
    correlation = np.sqrt(np.minimum.outer(fractions, fractions) / np.maximum.outer(fractions, fractions))
    for bound in (1.5, 2.2, 3.1):
        upper = bound / np.sqrt(fractions)
        lower = -upper if two_sided else np.full(len(fractions), -np.inf)
        expected = 1 - scipy_stats.multivariate_normal.cdf(upper, mean=np.zeros(4), cov=correlation,
                                                           lower_limit=lower, rng=np.random.default_rng(0))
        assert verdicts.crossing_probability(bound, fractions, two_sided) == pytest.approx(expected, abs=2e-5)


def test_repeated_p_is_the_fixed_n_p_with_one_look_and_larger_at_an_early_one():
    for p in (0.3, 0.04, 1e-4):
        assert verdicts.repeated_p(p, 1, [1.0]) == pytest.approx(p)
        assert verdicts.repeated_p(p, 1, [1.0], two_sided=False) == pytest.approx(p)
        early, last = verdicts.repeated_p(p, 1, [0.2, 0.4, 0.6, 0.8, 1.0]), verdicts.repeated_p(p, 5, [0.2, 0.4, 0.6,
                                                                                                      0.8, 1.0])
        assert early > last > p
    # At a look's nominal boundary the repeated p is α exactly (the table is read within 1e-6).
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    for k, nominal in enumerate(verdicts.boundary(fractions), 1):
        assert verdicts.repeated_p(nominal, k, fractions) == pytest.approx(0.05, abs=2e-5)


def test_the_paired_test_is_scipys_and_tost_is_statsmodels_and_the_textbook():
    x = np.array([0.301, 0.276, 0.334, 0.290, 0.312, 0.305])
    y = np.array([0.295, 0.281, 0.322, 0.281, 0.309, 0.300])
    test = verdicts.paired_test(x, y, 0.02)
    reference = scipy_stats.ttest_rel(x, y)
    assert (test.p, test.t, test.df, test.n) == pytest.approx((reference.pvalue, reference.statistic, 5, 6))
    d = x - y
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert test.tost_lower_p == pytest.approx(scipy_stats.t.sf((d.mean() + 0.02) / se, 5))
    assert test.tost_upper_p == pytest.approx(scipy_stats.t.cdf((d.mean() - 0.02) / se, 5))
    assert test.tost_p == max(test.tost_lower_p, test.tost_upper_p)
    assert verdicts.paired_test(x, x + 0.01, 0.02) is None  # every pair differs by the same amount
    assert verdicts.paired_test(x[:1], y[:1], 0.02) is None


def test_holm_and_bh_are_statsmodels():
    p = [0.01, 0.04, 0.03, 0.5]
    assert verdicts.adjust(p, "holm") == pytest.approx(multipletests(p, method="holm")[1])
    assert verdicts.adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])  # by hand: 4p, 3p, 2p, max'd
    assert verdicts.adjust(p, "bh") == pytest.approx(multipletests(p, method="fdr_bh")[1])
    assert verdicts.adjust(p, "none") == pytest.approx(p)
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 28):  # ties, p-values near 1 (capped) and tiny ones
        p = np.round(rng.uniform(0, 1, m) ** 3, 2)
        for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
            assert verdicts.adjust(p, ours) == pytest.approx(multipletests(p, method=theirs)[1], abs=1e-15)


def test_the_words():
    assert verdicts.verdict(+0.01, 0.01, 0.5) == "better"
    assert verdicts.verdict(-0.01, 0.01, 0.5) == "worse"
    assert verdicts.verdict(-0.01, 0.3, 0.01) == "matches"
    assert verdicts.verdict(-0.01, 0.01, 0.01) == "worse, within margin"
    assert verdicts.verdict(+0.01, 0.01, 0.01) == "better, within margin"
    assert verdicts.verdict(+0.01, 0.3, 0.3) == "not resolved"
    assert set(verdicts.RESOLVED) == set(verdicts.VERDICTS) - {"not resolved"}


def _pair(key, family, d, base=None, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0.3, 0.05, len(d)) if base is None else base
    return Pair(key, family, dict(enumerate(base + d)), dict(enumerate(base)))


def test_a_clear_difference_stops_at_the_first_look_and_an_unclear_one_runs_to_the_cap():
    rng = np.random.default_rng(1)
    plan = Plan(tuple(range(30)), (10, 20, 30))
    clear = _pair("clear", "all", rng.normal(0.1, 0.01, 30))
    unclear = _pair("unclear", "all", rng.normal(0.02, 0.08, 30))  # at the margin, noisy: unresolvable
    found = decide([clear, unclear], plan)
    assert (found["clear"].verdict, found["clear"].look, found["clear"].n, found["clear"].stop) == \
        ("better", 1, 10, "resolved")
    assert found["unclear"].stop == "max reached" and found["unclear"].n == 30 and found["unclear"].look == 3
    # Holm over the family: the adjusted p is at least the repeated p, which is at least the fixed-n p.
    for d in found.values():
        assert d.p_adjusted >= d.p_sequential >= d.test.p - 1e-12
    # A look not run yet is not tested: with seeds up to 15 the unclear pair stands at look 1, still going.
    partial = Pair("unclear", "all", {s: v for s, v in unclear.x.items() if s < 15},
                   {s: v for s, v in unclear.y.items() if s < 15})
    running = decide([partial], plan, complete=1)["unclear"]
    assert (running.look, running.n, running.stop) == (1, 10, "continues")
    # ... unless the caller says the look has ended (a failed run): then it is tested on the seeds it has, once (a
    # later look with no new seed does not test the same data again).
    ended = decide([partial], plan)["unclear"]
    assert (ended.look, ended.n, ended.stop) == (2, 15, "max reached")


def test_a_family_cap_stops_it_at_that_look_and_families_are_adjusted_apart():
    rng = np.random.default_rng(2)
    plan = Plan(tuple(range(30)), (10, 20, 30), family_max={"secondary": 10})
    pairs = [_pair(f"s{i}", "secondary", rng.normal(0.0, 0.05, 30), seed=i) for i in range(3)]
    pairs.append(_pair("p", "primary", rng.normal(0.0, 0.05, 30), seed=9))
    found = decide(pairs, plan)
    assert all(found[f"s{i}"].n == 10 and found[f"s{i}"].stop != "continues" for i in range(3))
    secondary = [found[f"s{i}"].p_sequential for i in range(3)]
    assert [found[f"s{i}"].p_adjusted for i in range(3)] == pytest.approx(verdicts.adjust(secondary, "holm"))
    assert found["p"].n == 30  # the primary family is not adjusted with the secondary one


def test_leave_one_out_is_the_verdict_decided_again_without_each_seed_pair():
    # A borderline "better" that two of its ten seeds carry. By hand: drop each seed, paired t (scipy), Holm with the
    # other comparison of the family (unchanged), and the verdict again.
    rng = np.random.default_rng(9)
    d = rng.normal(0.01, 0.01, 10)
    lean, other = _pair("lean", "f", d, seed=1), _pair("other", "f", rng.normal(0.0, 0.02, 10), seed=2)
    plan = Plan(tuple(range(10)), (10,), margin=0.001)  # a tiny margin: never within it, so the words are better/…
    found = decide([lean, other], plan)
    assert found["lean"].verdict == "better" and not found["other"].resolved
    checks = verdicts.leave_one_out([lean, other], plan, found)
    assert set(checks) == {"lean"}  # only resolved verdicts are checked
    by_hand = {}
    for s in range(10):
        keep = [t for t in range(10) if t != s]
        p = scipy_stats.ttest_rel([lean.x[t] for t in keep], [lean.y[t] for t in keep]).pvalue
        by_hand[s] = multipletests([p, found["other"].p_sequential], method="holm")[1][0]
    check = checks["lean"]
    assert check.tried == 10 and check.changed == sum(p >= 0.05 for p in by_hand.values()) == 2
    assert not check.survives and check.verdict == "not resolved"
    assert check.seed == max(by_hand, key=by_hand.get) and check.p == pytest.approx(max(by_hand.values()))
    # A clear difference holds without any seed; its worst case is still below α.
    clear = _pair("clear", "g", rng.normal(0.1, 0.01, 10), seed=3)
    check = verdicts.leave_one_out([clear], plan, decide([clear], plan))["clear"]
    assert check.survives and check.verdict == "better" and check.p < 0.05


def test_leave_one_out_keeps_the_looks():
    # Resolved at look 2 of 3: without one of its seeds the comparison is tested on the seeds it has left, at the
    # same looks (never on seeds the arm did not run).
    rng = np.random.default_rng(6)
    plan = Plan(tuple(range(30)), (10, 20, 30))
    pair = _pair("a", "f", rng.normal(0.03, 0.03, 30))
    d = decide([pair], plan)["a"]
    ran = Pair("a", "f", {s: pair.x[s] for s in d.seeds}, pair.y)  # the arm stopped: it has only these seeds
    d = decide([ran], plan)["a"]
    assert d.resolved and d.look >= 1
    check = verdicts.leave_one_out([ran], plan, {"a": d})["a"]
    assert check.tried == d.n
    without = Pair("a", "f", {s: v for s, v in ran.x.items() if s != check.seed}, ran.y)
    again = decide([without], plan)["a"]
    assert again.verdict == check.verdict and again.n < d.n
    assert check.p == pytest.approx(verdicts.deciding_p(again, d.verdict))


def test_a_relative_margin_is_a_fraction_of_the_baselines_mean():
    base = np.full(10, 0.5) + np.random.default_rng(3).normal(0, 0.02, 10)
    pair = Pair("a", "all", dict(enumerate(base + np.random.default_rng(4).normal(0, 0.01, 10))), dict(enumerate(base)))
    d = decide([pair], Plan(tuple(range(10)), (10,), margin=0.1, relative_margin=True))["a"]
    assert d.test.margin == pytest.approx(0.1 * base.mean())


def simulate(true_difference: float, sd: float, experiments: int, seed: int) -> dict[int, float]:
    """The whole procedure on a family of 4 comparisons (Holm), looks at 10, 20, …, 50 seeds: the share of
    experiments with a false verdict by each look (better/worse when nothing differs; matches or '…, within
    margin' when the true difference is at the margin)."""
    rng = np.random.default_rng(seed)
    plan = Plan(tuple(range(50)), (10, 20, 30, 40, 50), margin=0.02)
    wrong = {k: 0 for k in range(1, 6)}
    for _ in range(experiments):
        pairs = [Pair(str(i), "f", dict(enumerate(true_difference + rng.normal(0, sd, 50))), dict.fromkeys(range(50), 0.0))
                 for i in range(4)]
        found = decide(pairs, plan)
        false = [d.look for d in found.values() if d.resolved
                 and (d.verdict in ("better", "worse") if true_difference == 0 else "matches" in d.verdict
                      or "within" in d.verdict)]
        if false:
            for k in range(min(false), 6):
                wrong[k] += 1
    return {k: n / experiments for k, n in wrong.items()}


@pytest.mark.parametrize("true_difference, sd", [(0.0, 0.03), (0.02, 0.03)])
def test_the_sequential_procedure_holds_its_error_rates_at_every_look(true_difference, sd):
    experiments = 1500
    rates = simulate(true_difference, sd, experiments, seed=int(sd * 1000))
    print(f"\ntrue difference {true_difference}, SD {sd}: false verdicts by look "
          + ", ".join(f"{10 * k} seeds {rate:.3f}" for k, rate in rates.items()))
    allowance = 2 * math.sqrt(0.05 * 0.95 / experiments)  # the simulation's own error
    assert all(rate <= 0.05 + allowance for rate in rates.values()), rates
    if true_difference == 0:
        assert rates[5] > 0.005  # not vacuous: some experiments do err, as α allows
