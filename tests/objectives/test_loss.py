"""The one loss and the one gradient weight (objectives.loss), without a model: the weight read from autograd against
DESIGN.md's closed forms, with and without a correction and the KL term; the validity mask; π_old decided once."""

from __future__ import annotations

import pytest
import torch

from workbench.objectives import get_correction, get_objective
from workbench.objectives.common import proximal_logp
from workbench.objectives.loss import assemble_loss, kl_term, token_gradient_weight, valid_tokens

B, T = 3, 5


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    logp = (-2 * torch.rand(B, T, generator=gen, dtype=torch.float64)).requires_grad_()
    mu = logp.detach() + 0.4 * (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5)
    old = logp.detach() + 0.2 * (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5)
    ref = logp.detach() + 0.3 * (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5)
    adv = torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[0, -2:] = 0  # padding
    w = mask / mask.sum()  # token_mean
    return logp, mu, old, ref, adv, mask, w


def g_of(result, logp, w, mask):
    (grad,) = torch.autograd.grad(result.loss, logp)
    return token_gradient_weight(grad, w, mask)


def test_pg_and_grpo_weights_are_the_closed_forms(batch):
    logp, mu, _, _, adv, mask, w = batch
    r, a = (logp.detach() - mu).exp(), adv.unsqueeze(1).expand(B, T)
    g, valid = g_of(assemble_loss(get_objective("pg"), logp, mu, adv, mask, w), logp, w, mask)
    torch.testing.assert_close(g, torch.where(valid, r * a, 0.0))
    grpo = get_objective("grpo", epsilon_low=0.1, epsilon_high=0.1)
    g, valid = g_of(assemble_loss(grpo, logp, mu, adv, mask, w), logp, w, mask)
    clipped = ((a > 0) & (r > 1.1)) | ((a < 0) & (r < 0.9))
    torch.testing.assert_close(g, torch.where(valid & ~clipped, r * a, 0.0))


def test_drpo_weight_is_the_closed_form(batch):
    logp, mu, _, _, adv, mask, w = batch
    pi, m, a = logp.detach().exp(), mu.exp(), adv.unsqueeze(1).expand(B, T)
    g, valid = g_of(assemble_loss(get_objective("drpo", delta=0.15), logp, mu, adv, mask, w), logp, w, mask)
    expected = (pi / m) * a * (1 - torch.sign(a * (pi / m - 1)) * (pi - m).abs() / 0.15)
    torch.testing.assert_close(g, torch.where(valid, expected, 0.0))


def test_under_a_correction_the_objective_reads_pi_old_and_the_weight_carries_pi_old_over_mu(batch):
    logp, mu, old, _, adv, mask, w = batch
    a = adv.unsqueeze(1).expand(B, T)
    tis = get_correction("tis", high=1.05)
    result = assemble_loss(get_objective("pg"), logp, mu, adv, mask, w, old_logp=old, correction=tis)
    g, valid = g_of(result, logp, w, mask)
    c = (old - mu).exp().clamp(max=1.05)
    torch.testing.assert_close(g, torch.where(valid, c * (logp.detach() - old).exp() * a, 0.0))
    assert result.correction is not None and set(result.correction.metrics) <= set(result.metrics)
    # No old log-probs: π_old = π (detached), so the objective's ratio is 1 and g = c·A.
    g, valid = g_of(assemble_loss(get_objective("pg"), logp, mu, adv, mask, w, correction=tis), logp, w, mask)
    c = (logp.detach() - mu).exp().clamp(max=1.05)
    torch.testing.assert_close(g, torch.where(valid, c * a, 0.0))


def test_the_kl_term_adds_beta_times_exp_ref_minus_logp_minus_one(batch):
    logp, mu, _, ref, adv, mask, w = batch
    beta = 0.3
    result = assemble_loss(get_objective("pg"), logp, mu, adv, mask, w, beta=beta, ref_logp=ref)
    g, valid = g_of(result, logp, w, mask)
    r, a = (logp.detach() - mu).exp(), adv.unsqueeze(1).expand(B, T)
    torch.testing.assert_close(g, torch.where(valid, r * a + beta * ((ref - logp.detach()).exp() - 1), 0.0))
    # The loss itself: Σ w·(ℓ + β·k3).
    plain = get_objective("pg")(logp, mu, adv, mask).per_token_loss
    torch.testing.assert_close(result.loss, ((plain + kl_term(logp, ref, mask, beta)) * w).sum())


def test_the_weight_is_minus_the_gradient_over_w_on_the_valid_tokens_only():
    grad = torch.tensor([[0.2, -0.4, 0.6], [1.0, 3.0, -2.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    w = torch.tensor([[0.5, 0.25, 0.0], [0.5, 0.0, 2.0]])  # a zero w inside the mask is not valid either
    g, valid = token_gradient_weight(grad, w, mask)
    assert valid.tolist() == [[True, True, False], [True, False, True]]
    assert torch.equal(valid, valid_tokens(mask, w))
    torch.testing.assert_close(g, torch.tensor([[-0.4, 1.6, 0.0], [-2.0, 0.0, 1.0]]))


def test_no_old_log_probs_means_pi_old_is_pi_detached():
    logp = torch.randn(2, 3, requires_grad=True)
    old = torch.randn(2, 3)
    assert proximal_logp(logp, old) is old
    same = proximal_logp(logp, None)
    assert torch.equal(same, logp) and not same.requires_grad
