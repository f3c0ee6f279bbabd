"""mismatch/* (π_old against μ) and frac/trust_region against hand computations on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.objectives import get_objective
from workbench.objectives.common import mismatch_metrics

# Two sequences, the second one token shorter: π_old and μ per token, ρ = π_old/μ = (1.25, 1, 0.5 | 1, 2).
OLD = [[0.5, 0.25, 0.1], [0.8, 0.6, 0.9]]
MU = [[0.4, 0.25, 0.2], [0.8, 0.3, 0.1]]
MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]


def test_every_mismatch_metric_by_hand():
    old, mu = torch.tensor(OLD).log(), torch.tensor(MU).log()
    metrics = mismatch_metrics(old, mu, torch.tensor(MASK))
    rho = [1.25, 1.0, 0.5, 1.0, 2.0]
    log_rho = [math.log(r) for r in rho]
    row1, row2 = -(math.log(1.25) + math.log(0.5)) / 3, -math.log(2) / 2  # mean log μ − mean log π_old
    expected = {
        "mismatch/kl": -sum(log_rho) / 5,  # = −log(1.25)/5
        "mismatch/k3_kl": sum(r - math.log(r) - 1 for r in rho) / 5,
        "mismatch/chi2_token": (1.5625 + 1 + 0.25 + 1 + 4) / 5 - 1,  # 0.5625
        "mismatch/chi2_seq": ((1.25 * 0.5) ** 2 + 2.0 ** 2) / 2 - 1,  # 1.1953125
        "mismatch/log_ppl_abs_diff": (abs(row1) + abs(row2)) / 2,
        "mismatch/ppl_ratio": (math.exp(row1) + math.exp(row2)) / 2,
        "mismatch/is_ess": 5.75 ** 2 / (5 * 7.8125),  # (Σρ)² / (N Σρ²) = 0.8464
    }
    assert set(metrics) == set(expected)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-6), name
    assert metrics["mismatch/chi2_token"] == pytest.approx(0.5625) and metrics["mismatch/is_ess"] == pytest.approx(0.8464)


def test_no_mismatch_when_the_sampler_is_pi_old():
    old = torch.tensor(OLD).log()
    metrics = mismatch_metrics(old, old.clone(), torch.tensor(MASK))
    assert metrics == {"mismatch/kl": 0.0, "mismatch/k3_kl": 0.0, "mismatch/chi2_token": 0.0, "mismatch/chi2_seq": 0.0,
                       "mismatch/log_ppl_abs_diff": 0.0, "mismatch/ppl_ratio": 1.0, "mismatch/is_ess": 1.0}


def test_masked_tokens_and_empty_sequences_do_not_count():
    old, mu = torch.tensor(OLD).log(), torch.tensor(MU).log()
    padded = [torch.cat([t, torch.full((1, 3), -3.0)]) for t in (old, mu)]  # a third sequence with no valid token
    mask = torch.cat([torch.tensor(MASK), torch.zeros(1, 3)])
    assert mismatch_metrics(*padded, mask) == pytest.approx(mismatch_metrics(old, mu, torch.tensor(MASK)))
    assert mismatch_metrics(old, mu, torch.zeros(2, 3))["mismatch/is_ess"] == 1.0  # every name, nothing valid


def trust_region(name, pi, mu, adv, **params):
    logp, behaviour = torch.tensor([pi]).log(), torch.tensor([mu]).log()
    out = get_objective(name, **params)(logp, behaviour, torch.tensor([adv]), torch.ones(1, len(pi)))
    return out.metrics


def test_drpo_and_spo_count_a_weight_more_than_ten_percent_off_r_times_a():
    # DRPO, A = 1, μ = 0.5, δ = 0.15: g/(r·A) = 1 ∓ |π − μ|/δ, so a shift of 0.01 (6.7%) is inside, 0.02 (13%) is
    # out, whichever the direction; A = 0 has no gradient to change.
    metrics = trust_region("drpo", [0.51, 0.52, 0.48, 0.495, 0.9], [0.5] * 5, [1.0, 1.0, 1.0, 1.0, 0.0])
    assert metrics["frac/trust_region"] == pytest.approx(2 / 5)
    # SPO, ε = 0.2: g/(r·A) = 1 − sign(A(r−1))·|r−1|/ε; r = 1.01 (5%) inside, r = 1.03 (15%) and 0.97 (15%) out.
    metrics = trust_region("spo", [0.505, 0.515, 0.485, 0.5], [0.5] * 4, [2.0, -1.0, 1.0, 1.0])
    assert metrics["frac/trust_region"] == pytest.approx(2 / 4)


def test_trust_region_of_the_clipping_and_masking_families():
    pi, mu, adv = [0.9, 0.5, 0.2, 0.5], [0.5, 0.5, 0.5, 0.45], [1.0, 1.0, -1.0, 1.0]
    grpo = trust_region("grpo", pi, mu, adv)  # r = 1.8 (A > 0: clipped), 1, 0.4 (A < 0: clipped), 1.11
    assert grpo["frac/trust_region"] == grpo["frac/clipped"] == pytest.approx(2 / 4)
    dppo = trust_region("dppo_tv", pi, mu, adv)  # |π − μ| = 0.4 up with A > 0, 0, 0.3 down with A < 0, 0.05
    assert dppo["frac/trust_region"] == dppo["frac/masked"] == pytest.approx(2 / 4)
    assert trust_region("pg", pi, mu, adv)["frac/trust_region"] == 0.0
    assert trust_region("gpg", pi, mu, adv)["frac/trust_region"] == 0.0
    cispo = trust_region("cispo", pi, mu, adv, epsilon_high=0.5)  # r = 1.8 is clipped to 1.5
    assert cispo["frac/trust_region"] == cispo["frac/clipped"] == pytest.approx(1 / 4)


def test_trust_region_of_sapo_and_the_covariance_families():
    # SAPO: g = 4σ(1−σ)·r·A with σ = σ(τ(r−1)); r = 1 leaves it at r·A, r = 3 gives 4σ(2)σ(−2) = 0.42.
    assert trust_region("sapo", [0.3, 0.9], [0.3, 0.3], [1.0, 1.0])["frac/trust_region"] == pytest.approx(1 / 2)
    # KL-Cov penalises max(⌊ρN⌋, 1) tokens: 1 of 4 here.
    assert trust_region("kl_cov", [0.3, 0.9, 0.2, 0.5], [0.3, 0.3, 0.3, 0.5],
                        [1.0, 1.0, -1.0, 0.5])["frac/trust_region"] == pytest.approx(1 / 4)
    # Clip-Cov: the clipped token and the one selected token (wide band: every unclipped token is eligible).
    clip_cov = trust_region("clip_cov", [0.9, 0.5, 0.2, 0.5], [0.5, 0.5, 0.5, 0.45], [1.0, 1.0, 1.0, -1.0],
                            cov_low=-100.0, cov_high=100.0)
    assert clip_cov["frac/clipped"] == pytest.approx(1 / 4) and clip_cov["frac/masked"] == pytest.approx(1 / 4)
    assert clip_cov["frac/trust_region"] == pytest.approx(2 / 4)
