"""The contract every registered objective keeps, checked over all of them (plugins registered by name too)."""

from __future__ import annotations

import pytest
import torch

from workbench.objectives import available_objectives, get_objective
from workbench.objectives.common import shift_metrics

SHIFT_METRICS = {"tv/mean", "tv/max", "ratio/mean"}
TRUST_REGION = "frac/trust_region"  # every built-in family: the tokens whose gradient its trust region changed
FAMILY_METRICS = {
    "pg": {TRUST_REGION},
    "gpg": {TRUST_REGION},
    "grpo": {"frac/clipped", TRUST_REGION},
    "clip_cov": {"frac/clipped", "frac/masked", TRUST_REGION},
    "kl_cov": {TRUST_REGION},
    "dppo_tv": {"frac/masked", TRUST_REGION},
    "dppo_kl": {"frac/masked", TRUST_REGION},
    "drpo": {"frac/negative_weight", TRUST_REGION},
    "spo": {"frac/negative_weight", TRUST_REGION},
    "cispo": {"frac/clipped", TRUST_REGION},
    "gspo": {"frac/clipped", TRUST_REGION},
    "sapo": {TRUST_REGION},
    "gmpo": {"frac/clipped", TRUST_REGION},
    "dppo_topk_tv": {"frac/masked", TRUST_REGION},
    "dppo_topk_kl": {"frac/masked", TRUST_REGION},
}
NAMES = available_objectives()


def batch(seed=0, shape=(4, 16), dtype=torch.float32, spread=0.3):
    """Per-token advantages of both signs and some zeros, ragged masks, μ off π by up to ±spread in log."""
    gen = torch.Generator().manual_seed(seed)
    logp = -6 * torch.rand(shape, generator=gen, dtype=torch.float64)
    behaviour_logp = (logp + spread * (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)).clamp(max=0)
    advantages = torch.randn(shape, generator=gen, dtype=torch.float64)
    advantages[:, :2] = 0.0
    lengths = torch.randint(1, shape[1] + 1, (shape[0],), generator=gen)
    mask = (torch.arange(shape[1]) < lengths[:, None]).to(dtype)
    return logp.to(dtype), behaviour_logp.to(dtype), advantages.to(dtype), mask


def run(name, logp, behaviour_logp, advantages, mask, seed=0, **params):
    logp = logp.clone().requires_grad_()
    out = get_objective(name, **params)(logp, behaviour_logp, advantages, mask,
                                        generator=torch.Generator().manual_seed(seed))
    out.per_token_loss.sum().backward()
    return out, logp.grad


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_differentiability(name):
    logp, behaviour_logp, advantages, mask = batch()
    for adv in (advantages, advantages[:, 0] + 1):  # (B, T) and (B,)
        out, grad = run(name, logp, behaviour_logp, adv, mask)
        assert out.per_token_loss.shape == logp.shape
        assert out.per_token_loss.requires_grad and grad is not None and grad.abs().sum() > 0
        assert torch.isfinite(out.per_token_loss).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_masked_tokens_contribute_nothing(name):
    logp, behaviour_logp, advantages, mask = batch(seed=1)
    out, grad = run(name, logp, behaviour_logp, advantages, mask)
    masked = mask == 0
    assert masked.any()
    assert (out.per_token_loss[masked] == 0).all() and (grad[masked] == 0).all()
    # Whatever sits under the mask changes nothing: not the valid tokens' loss, gradient or metrics.
    noise = torch.Generator().manual_seed(9)
    other = [torch.where(masked, -8 * torch.rand(logp.shape, generator=noise), t) for t in (logp, behaviour_logp)]
    other_adv = torch.where(masked, 50 * torch.randn(logp.shape, generator=noise), advantages)
    out2, grad2 = run(name, *other, other_adv, mask)
    torch.testing.assert_close(out2.per_token_loss, out.per_token_loss, rtol=0, atol=0)
    torch.testing.assert_close(grad2, grad, rtol=0, atol=0)
    assert out2.metrics == pytest.approx(out.metrics)


@pytest.mark.parametrize("name", NAMES)
def test_metrics_present_and_in_range(name):
    logp, behaviour_logp, advantages, mask = batch(seed=2)
    out, _ = run(name, logp, behaviour_logp, advantages, mask)
    expected = FAMILY_METRICS.get(name, set())
    assert expected <= set(out.metrics), f"missing {expected - set(out.metrics)}"
    # The shared shift is the trainer's to measure, once: an objective reporting it would overwrite it.
    assert not SHIFT_METRICS & set(out.metrics)
    assert all(isinstance(v, float) for v in out.metrics.values())
    assert all(0.0 <= v <= 1.0 for k, v in out.metrics.items() if k.startswith("frac/"))


def test_shift_metrics_on_a_ragged_batch():
    logp, behaviour_logp, _, mask = batch(seed=2)
    metrics = shift_metrics(logp, behaviour_logp, mask)
    valid = mask.bool()
    tv = (logp.exp() - behaviour_logp.exp()).abs()[valid]
    assert set(metrics) == SHIFT_METRICS
    assert metrics["tv/mean"] == pytest.approx(float(tv.mean()), rel=1e-5)
    assert metrics["tv/max"] == pytest.approx(float(tv.max()), rel=1e-5)
    assert metrics["ratio/mean"] == pytest.approx(float((logp - behaviour_logp).exp()[valid].mean()), rel=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_reproducible_with_the_same_generator(name):
    # A wide batch with a generous Clip-Cov draw, so randomness would show if it leaked past the generator.
    logp, behaviour_logp, advantages, mask = batch(seed=3, shape=(8, 64), spread=0.1)
    params = {"clip_ratio": 0.2, "cov_low": 0.0, "cov_high": 10.0} if name == "clip_cov" else {}
    first, grad1 = run(name, logp, behaviour_logp, advantages, mask, seed=5, **params)
    torch.manual_seed(123)  # the global RNG must not matter
    second, grad2 = run(name, logp, behaviour_logp, advantages, mask, seed=5, **params)
    assert torch.equal(first.per_token_loss, second.per_token_loss) and torch.equal(grad1, grad2)
    assert first.metrics == second.metrics


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_with_no_valid_token(name):
    logp, behaviour_logp, advantages, mask = batch(seed=4)
    out, grad = run(name, logp, behaviour_logp, advantages, torch.zeros_like(mask))
    assert (out.per_token_loss == 0).all() and (grad == 0).all()
    assert all(v == v for v in out.metrics.values()), "no NaN metrics on an empty batch"


@pytest.mark.parametrize("name", NAMES)
def test_on_policy_every_objective_is_the_policy_gradient(name):
    """μ = π (r ≡ 1): every trust region is inactive and g = A (KL-Cov's |log r| has no slope at 0).

    Clip-Cov's draw does not look at r: on-policy it still detaches its max(⌊ρN⌋, 1) token. LUSPO scales each
    sequence's loss by its length |y_i| (its aggregation is a sum over the sequence): g = |y_i|·A.
    """
    logp, _, advantages, mask = batch(seed=6)
    _, grad = run(name, logp, logp.clone(), advantages, mask)
    length = mask.sum(-1, keepdim=True) if name == "luspo" else 1
    differs = ~torch.isclose(-grad, advantages * mask * length)
    if name == "clip_cov":
        assert differs.sum() <= 1 and (grad[differs] == 0).all()
    else:
        assert not differs.any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_inputs_give_no_nan_where_fp32_is_finite(name, dtype):
    # Extreme but legal inputs: rare tokens (log π down to −30), large shifts (|log r| past the clamp).
    logp, behaviour_logp, advantages, mask = batch(seed=7, shape=(4, 32), spread=25.0)
    logp = logp * 5
    half = [t.to(dtype) for t in (logp, behaviour_logp, advantages)]
    reference = [t.float() for t in half]  # the same rounded values, in fp32
    out32, grad32 = run(name, *reference, mask.float())
    out16, grad16 = run(name, *half, mask.to(dtype))
    finite = torch.isfinite(out32.per_token_loss)
    assert finite.all()
    assert not torch.isnan(out16.per_token_loss[finite]).any()
    assert not torch.isnan(grad16.float()[torch.isfinite(grad32)]).any()
    assert grad16.dtype == dtype
    torch.testing.assert_close(out16.per_token_loss, out32.per_token_loss)
    assert all(v == v for v in out16.metrics.values())
