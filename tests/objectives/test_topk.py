"""Top-K divergences against a direct computation from the full distributions, and the mask they drive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.objectives import get_objective
from workbench.objectives.dppo_topk import topk_divergence
from workbench.topk import topk_set

VOCAB, K = 50, 5


def full_distributions(seed=0, shape=(3, 7)):
    """π and μ over a vocabulary, long-tailed, π a perturbation of μ; and a sampled token per position."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(*shape, VOCAB, generator=gen, dtype=torch.float64)
    mu = logits.log_softmax(-1)
    pi = (logits + 0.8 * torch.randn(*shape, VOCAB, generator=gen, dtype=torch.float64)).log_softmax(-1)
    sampled = torch.multinomial(mu.exp().reshape(-1, VOCAB), 1, generator=gen).reshape(shape)
    return pi, mu, sampled


def direct(kind, pi_full, mu_full, sampled):
    """D over S = top-K of μ ∪ {sampled}, the rest as one bucket, by explicit sets (numpy, per position)."""
    p, q = pi_full.exp().numpy(), mu_full.exp().numpy()
    out = np.zeros(sampled.shape)
    for idx in np.ndindex(*sampled.shape):
        s = set(np.argsort(q[idx])[::-1][:K]) | {int(sampled[idx])}
        ids = sorted(s)
        rest_p, rest_q = 1 - p[idx][ids].sum(), 1 - q[idx][ids].sum()
        if kind == "tv":
            out[idx] = 0.5 * (np.abs(p[idx][ids] - q[idx][ids]).sum() + abs(rest_p - rest_q))
        else:
            out[idx] = (q[idx][ids] * np.log(q[idx][ids] / p[idx][ids])).sum() + rest_q * np.log(rest_q / rest_p)
    return out


@pytest.mark.parametrize("kind", ["tv", "kl"])
def test_topk_divergence_matches_the_full_distributions(kind):
    pi_full, mu_full, sampled = full_distributions()
    mu_top, ids = mu_full.topk(K, dim=-1)
    logp, behaviour_logp = (d.gather(-1, sampled[..., None])[..., 0] for d in (pi_full, mu_full))
    pi_at, mu_at = topk_set(pi_full.gather(-1, ids), mu_top, ids, logp, behaviour_logp, sampled)
    ours = topk_divergence(kind, logp, behaviour_logp, (pi_at, mu_at)).numpy()
    np.testing.assert_allclose(ours, direct(kind, pi_full, mu_full, sampled), rtol=1e-10, atol=1e-12)
    # Some sampled tokens fall outside the top-K, others inside: both branches of S were exercised.
    inside = (ids == sampled[..., None]).any(-1)
    assert inside.any() and (~inside).any()


def test_without_top_k_the_divergence_is_the_binary_one():
    pi_full, mu_full, sampled = full_distributions(seed=1)
    logp, behaviour_logp = (d.gather(-1, sampled[..., None])[..., 0] for d in (pi_full, mu_full))
    binary = (logp.exp() - behaviour_logp.exp()).abs()
    torch.testing.assert_close(topk_divergence("tv", logp, behaviour_logp, None), binary)


def test_the_topk_mask_sees_moves_the_binary_mask_misses():
    """Probability moving between two head tokens other than the sampled one: binary TV 0, top-K TV large."""
    mu = torch.tensor([[[0.4, 0.4, 0.1, 0.1]]], dtype=torch.float64).log()  # (B, T, V) = (1, 1, 4)
    pi = torch.tensor([[[0.05, 0.75, 0.1, 0.1]]], dtype=torch.float64).log()
    sampled = torch.tensor([[2]])
    mu_top, ids = mu.topk(2, dim=-1)
    logp, behaviour_logp = pi[..., 2], mu[..., 2]
    logp = logp.clone().requires_grad_()
    top = topk_set(pi.gather(-1, ids), mu_top, ids, logp.detach(), behaviour_logp, sampled)
    a = torch.tensor([-1.0])  # pushed down would need π < μ: here π = μ, so no direction, never masked
    out = get_objective("dppo_topk_tv")(logp, behaviour_logp, a, torch.ones(1, 1), top_k=top)
    assert out.metrics["frac/masked"] == 0.0
    assert topk_divergence("tv", logp.detach(), behaviour_logp, top).item() == pytest.approx(0.35)
    assert topk_divergence("tv", logp.detach(), behaviour_logp, None).item() == pytest.approx(0.0)
    # The sampled token itself moved up a little with A > 0: binary TV 0.02 < δ keeps it, top-K TV 0.37 masks it.
    pi_up = torch.tensor([[[0.05, 0.73, 0.12, 0.1]]], dtype=torch.float64).log()
    lp = pi_up[..., 2].clone().requires_grad_()
    top = topk_set(pi_up.gather(-1, ids), mu_top, ids, lp.detach(), behaviour_logp, sampled)
    masked = get_objective("dppo_topk_tv")(lp, behaviour_logp, torch.tensor([1.0]), torch.ones(1, 1), top_k=top)
    kept = get_objective("dppo_tv")(lp, behaviour_logp, torch.tensor([1.0]), torch.ones(1, 1))
    assert masked.metrics["frac/masked"] == 1.0 and kept.metrics["frac/masked"] == 0.0


@pytest.mark.parametrize("bias", [False, True])
def test_pi_at_the_ids_from_hidden_states_matches_the_full_softmax(monkeypatch, bias):
    """log π(i) = log π(y) + (z_i − z_y)/T, scored in chunks of positions, equals the full temperature softmax."""
    from workbench import topk

    monkeypatch.setattr(topk, "SCORING_CHUNK", 3)  # 2×4 positions: chunks of 3, 3, 2
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(6, VOCAB, bias=bias, dtype=torch.float64)

    class Model(torch.nn.Module):
        def get_output_embeddings(self):
            return head

    hidden = torch.randn(2, 9, 6, generator=gen, dtype=torch.float64)  # prompt 4 + completion 4 + 1
    completion = torch.randint(0, VOCAB, (2, 4), generator=gen)
    temperature = 0.7
    full = (head(hidden[:, -5:-1]) / temperature).log_softmax(-1)
    logp = full.gather(-1, completion[..., None])[..., 0]
    ids = full.topk(K, dim=-1).indices
    ours = topk.policy_logp_at(Model(), hidden, logp, completion, ids, temperature)
    torch.testing.assert_close(ours.double(), full.gather(-1, ids), rtol=1e-5, atol=1e-5)
