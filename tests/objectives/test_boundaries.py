"""Where the trust regions begin and which way they point, on hand-built tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.objectives import get_objective, gradient_weight

from . import closed_forms as cf


def weight(name, pi, mu, a, **params):
    return gradient_weight(get_objective(name, **params), pi, mu, a).numpy()


@pytest.mark.parametrize("mu", [0.375, 0.5, 0.625])
@pytest.mark.parametrize("delta", [0.125, 0.25])
def test_drpo_weight_is_zero_at_delta_in_the_harmful_direction_and_negative_beyond(mu, delta):
    # Binary fractions: π − μ = ±δ exactly.
    pi = np.array([mu + delta, mu - delta])
    a = np.array([1.0, -1.0])  # A > 0 is harmed by π rising, A < 0 by π falling
    assert np.abs(weight("drpo", pi, mu, a, delta=delta)).max() < 1e-12
    beyond = weight("drpo", np.array([mu + delta + 0.05, mu - delta - 0.05]), mu, a, delta=delta)
    assert (beyond / a < 0).all(), "past δ the weight must pull back toward μ"
    inside = weight("drpo", np.array([mu + delta - 0.05, mu - delta + 0.05]), mu, a, delta=delta)
    assert (inside / a > 0).all()


def test_drpo_weight_falls_linearly_and_is_above_one_in_the_helpful_direction():
    mu, delta = 0.5, 0.15
    shift = np.linspace(-0.3, 0.3, 13)
    for a in (1.0, -1.0):
        g_over_ra = weight("drpo", mu + shift, mu, a, delta=delta) / ((mu + shift) / mu * a)
        np.testing.assert_allclose(g_over_ra, 1 - np.sign(a) * shift / delta, atol=1e-12)
        helpful = np.sign(a) * shift < 0
        assert (g_over_ra[helpful] > 1).all()


@pytest.mark.parametrize(("mode", "a", "zero_at"), [("abs", 2.0, 0.15), ("const", 2.0, 0.3), ("square", 2.0, 0.075)])
def test_drpo_advantage_weighting_moves_the_boundary(mode, a, zero_at):
    """abs: |π−μ| = δ for every A; const: δ·|A|; square: δ/|A|."""
    g = weight("drpo", 0.4 + zero_at, 0.4, a, delta=0.15, advantage_weight=mode)
    assert abs(g) < 1e-12


def test_drpo_stays_bounded_for_rare_tokens_where_spo_does_not():
    mu, pi, a = 1e-4, 1e-4 + 0.05, 1.0  # a rare token whose probability rose by 0.05
    drpo = weight("drpo", pi, mu, a) / (pi / mu)
    spo = weight("spo", pi, mu, a) / (pi / mu)
    assert drpo == pytest.approx(1 - 0.05 / 0.15)
    assert spo < -1000


@pytest.mark.parametrize(("name", "delta"), [("dppo_tv", 0.15), ("dppo_kl", 0.05)])
def test_dppo_masks_only_in_the_harmful_direction(name, delta):
    mu = np.full(4, 0.5)
    pi = np.array([0.9, 0.1, 0.1, 0.9])  # far outside δ on both sides
    a = np.array([1.0, 1.0, -1.0, -1.0])
    g = weight(name, pi, mu, a)
    # A > 0 pushed up past δ and A < 0 pushed down past δ lose the gradient; tokens moving back keep r·A.
    np.testing.assert_array_equal(g == 0, [True, False, True, False])
    np.testing.assert_allclose(g[[1, 3]], (pi / mu * a)[[1, 3]])
    out = get_objective(name)(torch.tensor(np.log(pi))[None], torch.tensor(np.log(mu))[None],
                              torch.tensor(a)[None], torch.ones(1, 4))
    assert out.metrics["frac/masked"] == 0.5


@pytest.mark.parametrize(("name", "delta", "divergence"),
                         [("dppo_tv", 0.15, cf.tv), ("dppo_kl", 0.05, cf.bernoulli_kl)])
def test_dppo_mask_begins_at_delta(name, delta, divergence):
    mu = 0.3
    pi = np.linspace(0.31, 0.95, 200)
    g = weight(name, pi, mu, 1.0)
    outside = divergence(pi, mu) > delta
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(g == 0, outside)


@pytest.mark.parametrize(("name", "divergence"), [("dppo_tv", cf.tv), ("dppo_kl", cf.bernoulli_kl)])
def test_dppo_asymmetric_bounds_apply_by_direction(name, divergence):
    """δ_high masks tokens pushed up with A > 0, δ_low tokens pushed down with A < 0; either defaults to δ."""
    mu = 0.5
    up, down = np.linspace(0.51, 0.95, 120), np.linspace(0.49, 0.05, 120)
    low, high = (0.04, 0.3) if name == "dppo_tv" else (0.01, 0.2)
    g_up = weight(name, up, mu, 1.0, delta_low=low, delta_high=high)
    g_down = weight(name, down, mu, -1.0, delta_low=low, delta_high=high)
    for g, pi, bound in ((g_up, up, high), (g_down, down, low)):
        outside = divergence(pi, mu) > bound
        assert outside.any() and (~outside).any()
        np.testing.assert_array_equal(g == 0, outside)
    # Moving back toward μ keeps the gradient whatever the bound.
    assert (weight(name, up, mu, -1.0, delta_low=low, delta_high=high) != 0).all()
    # Only one side given: the other keeps δ.
    default = 0.15 if name == "dppo_tv" else 0.05
    g = weight(name, up, mu, 1.0, delta_low=low)
    np.testing.assert_array_equal(g == 0, divergence(up, mu) > default)


def test_dppo_truncates_the_importance_weight_at_c():
    g = weight("dppo_tv", np.array([0.02, 0.01]), np.array([0.001, 0.001]), 1.0, clip_c=5.0)
    np.testing.assert_allclose(g, [5.0, 5.0])


@pytest.mark.parametrize(("eps_low", "eps_high"), [(0.2, 0.2), (0.2, 0.28)])
def test_grpo_clips_only_where_ppo_does(eps_low, eps_high):
    mu = 0.5
    r = np.array([1 + eps_high + 0.01, 1 + eps_high + 0.01, 1 - eps_low - 0.01, 1 - eps_low - 0.01,
                  1 + eps_high - 0.01, 1 - eps_low + 0.01])
    a = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    g = weight("grpo", r * mu, mu, a, epsilon_low=eps_low, epsilon_high=eps_high)
    # Clipped: above 1+ε_hi with A > 0, below 1−ε_lo with A < 0. Everything else keeps r·A.
    np.testing.assert_array_equal(g == 0, [True, False, True, False, False, False])
    np.testing.assert_allclose(g[g != 0], (r * a)[g != 0])


@pytest.mark.parametrize("c", [1.5, 3.0])
def test_grpo_dual_clip_cuts_negative_advantages_above_c(c):
    mu = 0.125  # binary fractions: r = c exactly stays on the unclipped side
    r = np.array([c - 0.25, c, c + 0.25, c + 2.0, c + 0.25, 0.5])
    a = np.array([-1.0, -1.0, -1.0, -1.0, 1.0, -1.0])
    g = weight("grpo", r * mu, mu, a, clip_ratio_c=c)
    # A < 0 and r > c: no gradient; A > 0 above 1+ε_hi: PPO's clip as before; A < 0 below 1−ε_lo: PPO's clip.
    np.testing.assert_array_equal(g == 0, [False, False, True, True, True, True])
    np.testing.assert_allclose(g[:2], (r * a)[:2])
    off = weight("grpo", r * mu, mu, a)  # off by default: TRL's behaviour, r·A however large r is
    np.testing.assert_allclose(off[:4], (r * a)[:4])
    out = get_objective("grpo", clip_ratio_c=c)(torch.tensor(np.log(r * mu))[None],
                                                torch.full((1, 6), math.log(mu), dtype=torch.float64),
                                                torch.tensor(a)[None], torch.ones(1, 6))
    assert out.metrics["frac/dual_clipped"] == pytest.approx(2 / 6)
    assert out.metrics["frac/clipped"] == pytest.approx(4 / 6)
    # The loss is capped at −c·A: constant in π beyond c.
    loss = out.per_token_loss[0].numpy()
    np.testing.assert_allclose(loss[2:4], [c, c])


def clip_cov_batch(seed=0, n=(8, 50)):
    """Tokens with A = ±1, μ within 2% of π (PPO never clips), a few masked; Cov spread over the band."""
    gen = np.random.default_rng(seed)
    logp = gen.uniform(-8, 0, n)
    a = gen.choice([-1.0, 1.0], n)
    mu_logp = logp + gen.uniform(-0.02, 0.02, n)
    mask = gen.uniform(size=n) > 0.1
    return logp, mu_logp, a, mask


def detached_tokens(objective, logp, mu_logp, a, mask, seed):
    lp = torch.tensor(logp, requires_grad=True)
    out = objective(lp, torch.tensor(mu_logp), torch.tensor(a), torch.tensor(mask, dtype=torch.float64),
                    generator=torch.Generator().manual_seed(seed))
    out.per_token_loss.sum().backward()
    return (lp.grad.numpy() == 0) & mask, out.metrics


@pytest.mark.parametrize("clip_ratio", [2e-4, 0.01, 0.05, 0.5])
def test_clip_cov_detaches_max_floor_rho_n_1_of_the_eligible(clip_ratio):
    logp, mu_logp, a, mask = clip_cov_batch()
    eligible = mask & (cf.covariance(logp, a, mask) > 1.0) & (cf.covariance(logp, a, mask) < 5.0)
    n = int(mask.sum())
    assert 20 < eligible.sum() < n / 2, "the batch should put a fair share of tokens in the band"
    objective = get_objective("clip_cov", clip_ratio=clip_ratio)
    detached, metrics = detached_tokens(objective, logp, mu_logp, a, mask, seed=1)
    assert detached.sum() == min(max(math.floor(clip_ratio * n), 1), eligible.sum())
    assert not (detached & ~eligible).any()
    assert metrics["frac/masked"] == pytest.approx(detached.sum() / n)
    assert metrics["frac/clipped"] == 0.0


def test_clip_cov_never_draws_tokens_ppo_clipped_already():
    logp, mu_logp, a, mask = clip_cov_batch(seed=3)
    mu_logp = logp - np.log(1.5) * a  # r = 1.5 for A > 0 and 1/1.5 for A < 0: every token clipped
    detached, metrics = detached_tokens(get_objective("clip_cov", clip_ratio=0.5), logp, mu_logp, a, mask, seed=0)
    assert metrics["frac/clipped"] == 1.0 and metrics["frac/masked"] == 0.0


def test_clip_cov_draw_follows_the_generator():
    logp, mu_logp, a, mask = clip_cov_batch()
    objective = get_objective("clip_cov", clip_ratio=0.02)
    draws = [detached_tokens(objective, logp, mu_logp, a, mask, seed)[0] for seed in (0, 0, 1, 2)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not all((d == draws[0]).all() for d in draws[2:]), "different seeds should draw different tokens"


def test_kl_cov_penalises_the_top_rho_n_tokens_by_covariance():
    logp, mu_logp, a, mask = clip_cov_batch(n=(10, 100))
    n = int(mask.sum())
    objective = get_objective("kl_cov", ratio=0.01)
    lp = torch.tensor(logp, requires_grad=True)
    objective(lp, torch.tensor(mu_logp), torch.tensor(a), torch.tensor(mask, dtype=torch.float64)
              ).per_token_loss.sum().backward()
    g = -lp.grad.numpy()
    pi, mu = np.exp(logp), np.exp(mu_logp)
    penalised = mask & ~np.isclose(g, cf.pg(pi, mu, a), rtol=1e-12, atol=0)
    cov = np.where(mask, cf.covariance(logp, a, mask), -np.inf)
    k = math.floor(0.01 * n)
    assert penalised.sum() == k
    assert set(np.flatnonzero(penalised)) == set(np.argsort(cov, axis=None)[-k:])
    np.testing.assert_allclose(g[penalised], cf.kl_cov_penalised(pi, mu, a)[penalised])
