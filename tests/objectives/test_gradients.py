"""Autograd against DESIGN.md's closed forms: −∂(Σ loss)/∂log π = g_t on every valid token, 0 on masked ones.

Inputs are hypothesis-generated: π and μ anywhere in [1e-6, 1−1e-6] (rare and near-certain tokens),
often close to each other (inside the trust regions), A of both signs and exactly 0, random masks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workbench.objectives import get_objective, gradient_weight

from . import closed_forms as cf

EDGE_PROBS = [1e-6, 1e-4, 0.01, 0.3, 0.5, 0.7, 0.99, 0.9999, 1 - 1e-6]
PROBS = st.one_of(st.floats(1e-6, 1 - 1e-6), st.sampled_from(EDGE_PROBS))
ADVANTAGES = st.one_of(st.floats(-3, 3), st.sampled_from([0.0, 1.0, -1.0, 1e-3]))
SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def batches(draw, per_token_advantages=st.booleans()):
    """(π, μ, A, mask): about half the tokens within ±0.3 of μ, the others anywhere."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)))
    mu = draw(hnp.arrays(np.float64, shape, elements=PROBS))
    far = draw(hnp.arrays(np.float64, shape, elements=PROBS))
    shift = draw(hnp.arrays(np.float64, shape, elements=st.floats(-0.3, 0.3)))
    near = draw(hnp.arrays(np.bool_, shape))
    pi = np.where(near, np.clip(mu + shift, 1e-6, 1 - 1e-6), far)
    a_shape = shape if draw(per_token_advantages) else shape[:1]
    a = draw(hnp.arrays(np.float64, a_shape, elements=ADVANTAGES))
    mask = draw(hnp.arrays(np.bool_, shape))
    return pi, mu, a, mask


def autograd_weight(objective, pi, mu, a, mask, generator=None):
    """−∂(Σ loss)/∂log π, and π as the objective sees it (exp of the log, to the last bit)."""
    logp = torch.tensor(np.log(pi), requires_grad=True)
    behaviour_logp = torch.tensor(np.log(mu))
    loss = objective(logp, behaviour_logp, torch.tensor(a), torch.tensor(mask, dtype=torch.float64),
                     generator=generator).per_token_loss
    loss.sum().backward()
    return -logp.grad.numpy(), logp.detach().exp().numpy(), behaviour_logp.exp().numpy()


def tolerance(pi, mu, a):
    """Float64 noise of the largest term: r·A and the quadratic penalties' w·r·|r−1|/ε."""
    r = pi / mu
    return 1e-9 * (1 + r) ** 2 * (1 + a * a) * 20


def assert_weights(g, expected, pi, mu, a, where):
    bad = where & ~(np.abs(g - expected) <= tolerance(pi, mu, a))
    assert not bad.any(), f"autograd {g[bad]} vs closed form {expected[bad]} at π={pi[bad]}, μ={mu[bad]}, A={a[bad]}"


CASES = [
    ("pg", {}),
    ("grpo", {}),
    ("grpo", {"epsilon_low": 0.2, "epsilon_high": 0.28}),
    ("grpo", {"clip_ratio_c": 3.0}),
    ("grpo", {"epsilon_high": 0.28, "clip_ratio_c": 1.5}),
    ("dppo_tv", {}),
    ("dppo_tv", {"delta": 0.3, "clip_c": 2.0}),
    ("dppo_kl", {}),
    ("dppo_kl", {"delta": 0.2, "clip_c": 5.0}),
    ("dppo_tv", {"delta_low": 0.05, "delta_high": 0.3}),
    ("dppo_kl", {"delta_low": 0.3, "delta_high": 0.02}),
    ("spo", {}),
    ("spo", {"epsilon": 0.3, "advantage_weight": "const"}),
    ("spo", {"advantage_weight": "square"}),
    ("drpo", {}),
    ("drpo", {"delta": 12.5}),
    ("drpo", {"delta": 0.3, "advantage_weight": "const"}),
    ("drpo", {"advantage_weight": "square"}),
    ("cispo", {}),
    ("cispo", {"epsilon_low": 0.2, "epsilon_high": 0.28}),
    ("sapo", {}),
    ("sapo", {"temperature_pos": 3.0, "temperature_neg": 0.5}),
    ("gpg", {}),
    ("gspo", {}),
    ("gspo", {"epsilon_low": 0.2, "epsilon_high": 0.3}),
    ("gmpo", {}),
    ("gmpo", {"epsilon_low": 0.1, "epsilon_high": 0.2}),
    ("dppo_topk_tv", {"delta_high": 0.3}),
    ("dppo_topk_kl", {}),
]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
@SETTINGS
@given(batch=batches())
def test_autograd_matches_the_closed_form(name, params, batch):
    pi, mu, a, mask = batch
    g, pi, mu = autograd_weight(get_objective(name, **params), pi, mu, a, mask)
    a = np.broadcast_to(a if a.ndim == 2 else a[:, None], pi.shape)
    if name in cf.SEQUENCE_FORMS:
        expected = cf.SEQUENCE_FORMS[name](pi, mu, a, mask, **params)
    else:
        expected = cf.CLOSED_FORMS[name](pi, mu, a, **params)
    assert_weights(g, expected, pi, mu, a, mask & ~cf.near_an_edge(name, pi, mu, a, params, mask=mask))
    assert (g[~mask] == 0).all(), "a masked token got a gradient"


OLD_CASES = [("grpo", {}), ("grpo", {"clip_ratio_c": 2.0}), ("dppo_tv", {}), ("dppo_tv", {"clip_c": 2.0}),
             ("dppo_kl", {"delta_low": 0.1})]


@pytest.mark.parametrize(("name", "params"), OLD_CASES, ids=[f"{n}-{p}" for n, p in OLD_CASES])
@SETTINGS
@given(batch=batches(), old=st.data())
def test_trust_region_against_old_matches_the_closed_form(name, params, batch, old):
    """The clip or mask reads π_old, the importance weight π/μ: g = (π/μ)·A·1[inside the region around π_old]"""
    pi, mu, a, mask = batch
    old = old.draw(hnp.arrays(np.float64, pi.shape, elements=PROBS))
    objective = get_objective(name, trust_region_against="old", **params)
    logp = torch.tensor(np.log(pi), requires_grad=True)
    out = objective(logp, torch.tensor(np.log(mu)), torch.tensor(a), torch.tensor(mask, dtype=torch.float64),
                    old_logp=torch.tensor(np.log(old)))
    out.per_token_loss.sum().backward()
    g = -logp.grad.numpy()
    pi, mu, old = (np.exp(np.log(x)) for x in (pi, mu, old))
    a = np.broadcast_to(a if a.ndim == 2 else a[:, None], pi.shape)
    expected = cf.against_old(name, pi, mu, old, a, **params)
    assert_weights(g, expected, pi, mu, a, mask & ~cf.near_an_edge(name, pi, old, a, params))
    # Without π_old (first update of a batch) the trust region is measured against π itself: never active.
    logp.grad = None
    objective(logp, torch.tensor(np.log(mu)), torch.tensor(a), torch.tensor(mask, dtype=torch.float64)
              ).per_token_loss.sum().backward()
    cap = np.inf if name == "grpo" else params.get("clip_c", 20.0)
    assert_weights(-logp.grad.numpy(), np.minimum(pi / mu, cap) * a, pi, mu, a, mask)


CLIP_COV_CASES = [{}, {"clip_ratio": 0.5, "cov_low": -1.0, "cov_high": 1.0}, {"clip_ratio": 1.0, "cov_low": -50.0,
                                                                              "cov_high": 50.0}]


@pytest.mark.parametrize("params", CLIP_COV_CASES)
@SETTINGS
@given(batch=batches(), seed=st.integers(0, 2**16))
def test_clip_cov_is_ppo_except_on_the_detached_draw(params, batch, seed):
    pi, mu, a, mask = batch
    objective = get_objective("clip_cov", **params)
    g, pi, mu = autograd_weight(objective, pi, mu, a, mask, torch.Generator().manual_seed(seed))
    a = np.broadcast_to(a if a.ndim == 2 else a[:, None], pi.shape)
    ppo = cf.grpo(pi, mu, a)
    valid = mask & ~cf.near_an_edge("grpo", pi, mu, a, {})
    detached = valid & (g == 0) & (ppo != 0)
    assert_weights(g, ppo, pi, mu, a, valid & ~detached)
    assert (g[~mask] == 0).all()
    p = objective.params
    cov = cf.covariance(np.log(pi), a, mask) if mask.any() else np.zeros_like(pi)
    eligible = mask & (cov > p.cov_low) & (cov < p.cov_high) & (ppo != 0)
    assert detached.sum() <= max(math.floor(p.clip_ratio * mask.sum()), 1)
    assert not (detached & ~eligible).any(), "a token outside the covariance band lost its gradient"


@pytest.mark.parametrize("params", [{}, {"ratio": 0.3, "beta": 0.5}, {"ratio": 1.0}])
@SETTINGS
@given(batch=batches())
def test_kl_cov_penalises_exactly_the_top_covariance_tokens(params, batch):
    pi, mu, a, mask = batch
    objective = get_objective("kl_cov", **params)
    g, pi, mu = autograd_weight(objective, pi, mu, a, mask)
    a = np.broadcast_to(a if a.ndim == 2 else a[:, None], pi.shape)
    assert (g[~mask] == 0).all()
    if not mask.any():
        return
    plain, penalised = cf.pg(pi, mu, a), cf.kl_cov_penalised(pi, mu, a, objective.params.beta)
    tol = tolerance(pi, mu, a)
    is_plain, is_penalised = np.abs(g - plain) <= tol, np.abs(g - penalised) <= tol
    assert (is_plain | is_penalised)[mask].all(), "g is neither r·A nor r·A − β·sign(log r)"
    k = max(math.floor(objective.params.ratio * mask.sum()), 1)
    cov = cf.covariance(np.log(pi), a, mask)
    kth = np.sort(cov[mask])[::-1][k - 1]
    above, below = mask & (cov > kth + 1e-9), mask & (cov < kth - 1e-9)
    at_or_above = mask & (cov >= kth - 1e-9)
    if at_or_above.sum() == k:  # no tie at the cut: the top k are known exactly
        above = at_or_above
    assert is_penalised[above].all(), "a token above the top-ρ covariance cut was not penalised"
    assert is_plain[below].all(), "a token below the top-ρ covariance cut was penalised"
    assert (mask & is_penalised & ~is_plain).sum() <= k


@pytest.mark.parametrize("name", ["pg", "grpo", "dppo_tv", "dppo_kl", "spo", "drpo", "cispo", "sapo", "gpg"])
@settings(max_examples=25, deadline=None)
@given(batch=batches(per_token_advantages=st.just(True)))
def test_geometry_reads_the_same_weight(name, batch):
    """`gradient_weight` (what the plot draws) is the closed form too."""
    pi, mu, a, _ = batch
    objective = get_objective(name)
    g = gradient_weight(objective, pi, mu, a).numpy()
    pi, mu = np.exp(np.log(pi)), np.exp(np.log(mu))
    expected = cf.CLOSED_FORMS[name](pi, mu, a)
    assert_weights(g, expected, pi, mu, a, ~cf.near_an_edge(name, pi, mu, a, {}))
