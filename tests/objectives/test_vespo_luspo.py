"""`vespo` and `luspo` against closed forms written here (numpy, float64, hypothesis inputs) and VESPO's φ against
TRL 1.16's own ``GRPOTrainer.get_gamma_weights`` on identical tensors (their loss and parameter gradients against
TRL's ``_compute_loss``: tests/objectives/test_trl_parity.py, LOSSES)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workbench.objectives import get_objective

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def batches(draw):
    """(log π, log μ, A (B,), mask) with sequence log-ratios from tiny to beyond VESPO's clamps."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 6)))
    mu = draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, -1e-4)))
    scale = draw(st.sampled_from([1e-4, 0.05, 0.5, 3.0]))
    d = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1))) * scale
    a = draw(hnp.arrays(np.float64, shape[:1], elements=st.one_of(st.floats(-2, 2), st.sampled_from([0.0, 1.0, -1.0]))))
    mask = draw(hnp.arrays(np.bool_, shape))
    return mu + d, mu, a, mask


def autograd_weight(name, logp, mu, a, mask, **params):
    lp = torch.tensor(logp, requires_grad=True)
    out = get_objective(name, **params)(lp, torch.tensor(mu), torch.tensor(a), torch.tensor(mask, dtype=torch.float64))
    out.per_token_loss.sum().backward()
    return -lp.grad.numpy(), out


def cf_vespo(logp, mu, a, mask, k_pos=2.0, lambda_pos=3.0, k_neg=3.0, lambda_neg=2.0):
    log_w = np.clip(np.where(mask, np.clip(logp - mu, -20, 20), 0).sum(-1), math.log(1e-8), 20)
    w = np.exp(log_w)
    k = np.where(a >= 0, k_pos, k_neg)
    lam = np.where(a >= 0, lambda_pos, lambda_neg)
    phi = np.exp(lam) * w ** k * np.exp(-lam * w)
    return (phi * a)[:, None] * mask


def cf_luspo(logp, mu, a, mask, epsilon_low=3e-4, epsilon_high=4e-4):
    n = mask.sum(-1)
    s = np.exp(np.where(mask, logp - mu, 0).sum(-1) / np.maximum(n, 1))
    clipped = ((a > 0) & (s > 1 + epsilon_high)) | ((a < 0) & (s < 1 - epsilon_low))
    return (n * s * a * ~clipped)[:, None] * mask


@SETTINGS
@given(batches(), st.sampled_from([{}, {"k_pos": 1.0, "lambda_pos": 1.0, "k_neg": 0.5, "lambda_neg": 4.0}]))
def test_vespo_gradient_weight_is_phi_times_a(batch, params):
    logp, mu, a, mask = batch
    g, _ = autograd_weight("vespo", logp, mu, a, mask, **params)
    expected = cf_vespo(logp, mu, a, mask, **params)
    assert np.allclose(g, expected, rtol=1e-10, atol=1e-12 * (1 + np.abs(expected).max()))


@SETTINGS
@given(batches(), st.sampled_from([{}, {"epsilon_low": 0.2, "epsilon_high": 0.28}]))
def test_luspo_gradient_weight_is_length_times_gspo(batch, params):
    logp, mu, a, mask = batch
    g, _ = autograd_weight("luspo", logp, mu, a, mask, **params)
    n = mask.sum(-1)
    s = np.exp(np.where(mask, logp - mu, 0).sum(-1) / np.maximum(n, 1))
    lo, hi = 1 - params.get("epsilon_low", 3e-4), 1 + params.get("epsilon_high", 4e-4)
    near = (np.abs(s - lo) < 1e-9) | (np.abs(s - hi) < 1e-9)  # on the clip edge the last bit decides
    expected = cf_luspo(logp, mu, a, mask, **params)
    rows = ~near
    assert np.allclose(g[rows], expected[rows], rtol=1e-9, atol=1e-12)


def test_vespo_weight_is_one_on_policy_and_small_far_off_policy():
    logp = torch.log(torch.tensor([[0.5, 0.4], [0.5, 0.4], [0.5, 0.4]], dtype=torch.float64))
    mu = logp + torch.tensor([[0.0, 0.0], [2.0, 2.0], [-2.0, -2.0]], dtype=torch.float64)
    a = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    g, out = autograd_weight("vespo", logp.numpy(), mu.numpy(), a.numpy(), np.ones((3, 2), dtype=bool))
    assert g[0] == pytest.approx([1.0, 1.0])  # φ(1) = 1: on-policy VESPO is REINFORCE
    assert g[1, 0] == pytest.approx(math.exp(3 - 2 * 4 - 3 * math.exp(-4)))  # w = e^−4, A > 0: e^λ·w^k·e^−λw
    assert -1e-30 < g[2, 0] < 0  # w = e^4, A < 0: e^(2 + 12 − 2e^4), the decay wins
    assert out.metrics["frac/trust_region"] == pytest.approx(2 / 3)


def test_luspo_is_gspo_times_length():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 5, generator=gen, dtype=torch.float64) * 3
    mu = logp - 0.3 * (torch.rand(3, 5, generator=gen, dtype=torch.float64) - 0.5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float64)
    a = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    gspo = get_objective("gspo", epsilon_low=0.1, epsilon_high=0.1)(logp, mu, a, mask).per_token_loss
    luspo = get_objective("luspo", epsilon_low=0.1, epsilon_high=0.1)(logp, mu, a, mask).per_token_loss
    torch.testing.assert_close(luspo, gspo * mask.sum(-1, keepdim=True), rtol=1e-15, atol=0)


# ---- TRL 1.16's own code ---------------------------------------------------------------------------------------

trl = pytest.importorskip("trl")


@pytest.mark.parametrize("seed", range(6))
def test_vespo_phi_equals_trl_get_gamma_weights(seed):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(5, 7, generator=gen, dtype=torch.float64) * 4
    mu = logp - (torch.rand(5, 7, generator=gen, dtype=torch.float64) - 0.5) * (0.2 + seed)
    mask = (torch.rand(5, 7, generator=gen) > 0.2).to(torch.float64)
    a = torch.randn(5, generator=gen, dtype=torch.float64)
    a[0] = 0.0
    theirs = trl.GRPOTrainer.get_gamma_weights(a.unsqueeze(1), logp - mu, mask, None)
    lp = logp.clone().requires_grad_()
    get_objective("vespo")(lp, mu, a, mask).per_token_loss.sum().backward()
    phi = (-lp.grad / (a.unsqueeze(1) * mask)).nan_to_num(nan=0.0)  # g = φ·A on valid tokens with A ≠ 0
    valid = (mask > 0) & (a.unsqueeze(1) != 0)
    torch.testing.assert_close(phi[valid], theirs.expand_as(mask)[valid], rtol=1e-12, atol=1e-300)
