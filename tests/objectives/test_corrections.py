"""Mismatch corrections against closed forms written independently here (numpy, float64), at every mode and
level, with hypothesis-generated log-probabilities; the boundaries (a ratio exactly at a bound, empty sequences,
all-masked rows); the one-line errors; and parity with TRL 1.16's own code on identical tensors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workbench.objectives import get_correction
from workbench.objectives.corrections import METRIC_NAMES

SETTINGS = settings(max_examples=60, deadline=None)
LEVELS = ["token", "sequence", "geometric"]
BOUNDS = st.sampled_from([(None, 2.0), (0.5, 2.0), (0.8, 1.25), (None, None), (0.5, None), (0.999, 1.001),
                          (1.0, 1.0)])


@st.composite
def batches(draw):
    """(log π, log π_old, log μ, A (B,), mask): log-ratios up to ±1.5, often tiny; ragged and empty rows."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 6)))
    mu = draw(hnp.arrays(np.float64, shape, elements=st.floats(-12, -1e-6)))
    scale = draw(st.sampled_from([1e-3, 0.1, 0.5, 1.5]))
    d_old = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1))) * scale
    d_pi = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1))) * scale
    a = draw(hnp.arrays(np.float64, shape[:1], elements=st.one_of(st.floats(-2, 2), st.sampled_from([0.0, -1.0]))))
    mask = draw(hnp.arrays(np.bool_, shape))
    return mu + d_pi, mu + d_old, mu, a, mask


def call(name, logp, old, mu, a, mask, **params):
    out = get_correction(name, **params)(torch.tensor(logp), torch.tensor(old), torch.tensor(mu), torch.tensor(a),
                                         torch.tensor(mask, dtype=torch.float64))
    return out, np.broadcast_to(out.weight.numpy(), mask.shape)


# ---- closed forms (independent of the module) ---------------------------------------------------------------


def level_ratio(old, mu, mask, level):
    d = np.where(mask, old - mu, 0.0)
    if level == "token":
        return np.exp(d)
    total = d.sum(-1, keepdims=True)
    if level == "geometric":
        total = total / np.maximum(mask.sum(-1, keepdims=True), 1)
    return np.broadcast_to(np.exp(total), mask.shape)


def cf_tis(old, mu, mask, level, low, high):
    return np.clip(level_ratio(old, mu, mask, level), low, high)


def cf_mis(old, mu, mask, level, low, high):
    w = level_ratio(old, mu, mask, level)
    inside = (w >= (0 if low is None else low)) & (w <= (np.inf if high is None else high))
    return np.where(inside, w, 0.0)


def cf_opsm(logp, mu, a, mask, threshold):
    n = mask.sum(-1)
    mean = np.where(mask, mu - logp, 0).sum(-1) / np.maximum(n, 1)
    keep = ~((a < 0) & (mean > threshold))
    return np.broadcast_to(keep[:, None].astype(float), mask.shape)


def cf_rs(old, mu, mask, metric, agg, low, high):
    d = old - mu
    k = {"k1": -d, "k2": d * d / 2, "k3": np.exp(d) - 1 - d}[metric]
    if agg == "seq_sum":
        k = np.where(mask, k, 0).sum(-1, keepdims=True)
    elif agg == "seq_mean":
        k = np.where(mask, k, 0).sum(-1, keepdims=True) / np.maximum(mask.sum(-1, keepdims=True), 1)
    elif agg == "seq_max":
        k = np.where(mask.any(-1, keepdims=True), np.where(mask, k, -np.inf).max(-1, keepdims=True), 0.0)
    if metric == "k1":
        low = 1 / high if low is None else low
        keep = (np.exp(k) >= low * (1 - 1e-12)) & (np.exp(k) <= high * (1 + 1e-12))
    else:
        keep = k <= high
    return np.broadcast_to(keep.astype(float), mask.shape)


def assert_on_valid(weight, expected, mask):
    assert np.allclose(weight[mask], expected[mask], rtol=1e-12, atol=1e-300), (weight, expected, mask)


@SETTINGS
@given(batches(), st.sampled_from(LEVELS), BOUNDS)
def test_tis_matches_closed_form(batch, level, bounds):
    logp, old, mu, a, mask = batch
    low, high = bounds
    out, w = call("tis", logp, old, mu, a, mask, level=level, low=low, high=high)
    assert_on_valid(w, cf_tis(old, mu, mask, level, low, high), mask)
    assert out.weight.shape == ((mask.shape[0], 1) if level != "token" else mask.shape)
    assert out.metrics["correction/frac_masked"] == 0.0


@SETTINGS
@given(batches(), st.sampled_from(LEVELS), BOUNDS)
def test_mis_matches_closed_form(batch, level, bounds):
    logp, old, mu, a, mask = batch
    low, high = bounds
    raw = level_ratio(old, mu, mask, level)
    # A ratio within rounding of a bound is decided by the last bit: compare only the clear cases.
    near = np.zeros_like(mask)
    for b in (low, high):
        if b is not None:
            near |= np.abs(raw - b) < 1e-9 * b
    out, w = call("mis", logp, old, mu, a, mask, level=level, low=low, high=high)
    assert_on_valid(w, cf_mis(old, mu, mask, level, low, high), mask & ~near)
    expected_masked = (cf_mis(old, mu, mask, level, low, high) == 0)[mask & ~near]
    if mask.any() and not near.any():
        assert out.metrics["correction/frac_masked"] == pytest.approx(expected_masked.mean())


@SETTINGS
@given(batches(), st.sampled_from([0.0, 1e-3, 0.05, 0.5]))
def test_opsm_matches_closed_form(batch, threshold):
    logp, old, mu, a, mask = batch
    out, w = call("opsm", logp, old, mu, a, mask, threshold=threshold)
    assert out.weight.shape == (mask.shape[0], 1)
    assert_on_valid(w, cf_opsm(logp, mu, a, mask, threshold), mask)


@SETTINGS
@given(batches(), st.sampled_from(["k1", "k2", "k3"]), st.sampled_from(["token", "seq_sum", "seq_mean", "seq_max"]),
       st.sampled_from([(None, 1.5), (0.999, 1.001), (0.5, 2.0), (None, 0.01), (None, 0.5)]))
def test_rs_matches_closed_form(batch, metric, agg, bounds):
    logp, old, mu, a, mask = batch
    low, high = bounds
    if (metric != "k1" and low is not None) or (metric == "k1" and agg == "seq_max"):
        with pytest.raises(ValueError, match="low|agg"):
            get_correction("rs", metric=metric, agg=agg, low=low, high=high)
        return
    out, w = call("rs", logp, old, mu, a, mask, metric=metric, agg=agg, low=low, high=high)
    assert set(np.unique(w)) <= {0.0, 1.0}
    assert_on_valid(w, cf_rs(old, mu, mask, metric, agg, low, high), mask)


# ---- boundaries --------------------------------------------------------------------------------------------------


def test_ratio_exactly_at_a_bound_is_kept_by_mis_and_untouched_by_tis():
    mu = torch.tensor([[-1.0, -2.0, -0.5]], dtype=torch.float64)
    old = mu + torch.tensor([[0.3, -0.4, 0.0]], dtype=torch.float64)
    ratio = (old - mu).exp()
    low, high = float(ratio[0, 1]), float(ratio[0, 0])  # the bounds are the ratios themselves, to the last bit
    mask = torch.ones_like(mu)
    adv = torch.ones(1, dtype=torch.float64)
    mis = get_correction("mis", level="token", low=low, high=high)(old, old, mu, adv, mask)
    assert torch.equal(mis.weight, ratio)
    assert mis.metrics["correction/frac_masked"] == 0.0
    tis = get_correction("tis", level="token", low=low, high=high)(old, old, mu, adv, mask)
    assert torch.equal(tis.weight, ratio) and tis.metrics["correction/frac_truncated"] == 0.0
    just_inside = get_correction("mis", level="token", low=low, high=math.nextafter(high, 0))(old, old, mu, adv, mask)
    assert just_inside.weight[0, 0] == 0 and just_inside.metrics["correction/frac_masked"] == pytest.approx(1 / 3)


def test_empty_sequence_and_all_masked_batch():
    mu = torch.tensor([[-1.0, -1.0], [-0.5, -3.0]], dtype=torch.float64)
    old = mu + torch.tensor([[2.0, 2.0], [0.1, -0.2]], dtype=torch.float64)
    mask = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    adv = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    for level in ("sequence", "geometric"):
        out = get_correction("mis", level=level, low=0.5, high=2.0)(old, old, mu, adv, mask)
        assert out.weight[0, 0] == 1.0  # no valid token: log-ratio 0, ratio 1 (masked out of the loss anyway)
    opsm = get_correction("opsm", threshold=0.0)(old, old, mu, adv, mask)
    assert opsm.weight[0, 0] == 1.0  # no evidence of divergence: kept
    nothing = torch.zeros_like(mask)
    for name in ("tis", "mis", "opsm", "rs", "mis@icepop", "rs@verl_geo"):
        out = get_correction(name)(old, None, mu, adv, nothing)
        assert set(out.metrics) == set(METRIC_NAMES)
        assert all(math.isfinite(v) for v in out.metrics.values())
        assert out.log_weight is not None and out.log_weight.numel() == 0


def test_weight_is_detached_float_and_pi_old_defaults_to_pi():
    logp = torch.tensor([[-0.2, -1.0, -3.0]], requires_grad=True)
    mu = torch.tensor([[-0.1, -1.5, -2.0]], dtype=torch.bfloat16)
    out = get_correction("tis", level="token", high=1.2)(logp, None, mu, torch.ones(1), torch.ones(1, 3))
    assert not out.weight.requires_grad and out.weight.dtype == torch.float32
    expected = (logp.detach() - mu.float()).exp().clamp(max=1.2)
    assert torch.allclose(out.weight, expected)
    assert out.metrics["correction/frac_truncated"] == pytest.approx(1 / 3)
    raw_max = float((logp.detach()[0, 1] - mu[0, 1].float()).exp())
    assert out.metrics["correction/raw_ratio_max"] == pytest.approx(raw_max)


def test_nan_behaviour_log_prob_counts_as_no_mismatch():
    mu = torch.tensor([[float("nan"), -1.0]], dtype=torch.float64)
    old = torch.tensor([[-0.5, -0.9]], dtype=torch.float64)
    out = get_correction("tis", level="sequence", high=None)(old, old, mu, torch.ones(1, dtype=torch.float64),
                                                             torch.ones(1, 2, dtype=torch.float64))
    assert torch.allclose(out.weight, torch.tensor([[math.exp(0.1)]], dtype=torch.float64))


def test_log_weight_histogram_values():
    mu = torch.zeros(1, 3, dtype=torch.float64) - 1
    old = mu + torch.tensor([[1.0, 0.1, -2.0]], dtype=torch.float64)
    out = get_correction("mis", level="token", low=0.5, high=2.0)(old, old, mu, torch.ones(1, dtype=torch.float64),
                                                                  torch.ones(1, 3, dtype=torch.float64))
    assert out.log_weight.tolist() == pytest.approx([0.1])  # 1.0 and −2.0 are masked: no log of 0


# ---- errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "field"), [
    ("tis", {"low": 3.0, "high": 2.0}, "low"),
    ("mis", {"low": -0.1}, "low"),
    ("tis", {"high": -1.0}, "high"),
    ("tis", {"level": "word"}, "level"),
    ("opsm", {"threshold": -0.5}, "threshold"),
    ("rs", {"metric": "k2", "low": 0.1, "high": 1.0}, "low"),
    ("rs", {"metric": "k1", "agg": "seq_max"}, "agg"),
    ("rs", {"high": None}, "high"),
    ("tis", {"bound": 2.0}, "bound"),
    ("mis@icepop", {"low": 6.0}, "low"),
])
def test_bad_parameters_are_one_line_errors_naming_the_field(name, params, field):
    with pytest.raises(ValueError) as err:
        get_correction(name, **params)
    message = str(err.value)
    assert "\n" not in message and field in message and name.partition("@")[0] in message


def test_unknown_correction_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown correction 'icepop'.*tis.*mis@icepop"):
        get_correction("icepop")


def test_presets_carry_their_sources_and_numbers():
    from workbench.objectives import available_correction_presets, get_correction_spec

    expected = {"mis@trl": {"level": "sequence", "low": None, "high": 3.0},
                "tis@verl_fp8": {"level": "token", "low": None, "high": 2.0},
                "mis@verl_seq": {"level": "sequence", "low": 0.5, "high": 2.0},
                "rs@verl_geo": {"metric": "k1", "agg": "seq_mean", "low": 0.999, "high": 1.001},
                "mis@icepop": {"level": "token", "low": 0.5, "high": 5.0},
                "opsm@trl": {"threshold": 0.5}}
    assert set(expected) <= set(available_correction_presets())
    for name, params in expected.items():
        spec = get_correction_spec(name)
        assert spec.source
        assert get_correction(name).params.model_dump() | params == get_correction(name).params.model_dump()
    assert get_correction("tis@verl_fp8").label == "tis(token, 2.0)"
    assert get_correction("mis@verl_seq").label == "mis(sequence, 0.5, 2.0)"
    assert get_correction("mis@icepop", high=3.0).params.high == 3.0  # given parameters override the preset


# ---- parity with TRL 1.16's own code -----------------------------------------------------------------------------

trl = pytest.importorskip("trl")


def random_batch(seed, shape=(6, 7)):
    gen = torch.Generator().manual_seed(seed)
    mu = -torch.rand(shape, generator=gen, dtype=torch.float64) * 4
    old = mu + (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    logp = old + (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    mask = (torch.rand(shape, generator=gen) > 0.25).to(torch.float64)
    mask[0] = 0.0  # an empty completion
    adv = torch.randn(shape[0], generator=gen, dtype=torch.float64)
    return logp, old, mu, adv, mask


@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.1])
def test_opsm_equals_trl_get_off_policy_mask(threshold):
    dropped = 0
    for seed in range(8):
        logp, old, mu, adv, mask = random_batch(seed)
        ours = get_correction("opsm", threshold=threshold)(logp, old, mu, adv, mask).weight
        theirs = trl.GRPOTrainer.get_off_policy_mask(advantages=adv.unsqueeze(1), per_token_logps=logp,
                                                     sampling_per_token_logps=mu, mask=mask,
                                                     off_policy_threshold=threshold)
        assert torch.equal(ours, theirs)
        dropped += int((theirs == 0).sum())
    assert 0 < dropped < 8 * 6  # both outcomes occur on these batches


def trl_vllm_importance_sampling_ratio(old, mu, mask, mode, clip_min, clip_max):
    """TRL 1.16 GRPOTrainer._generate_and_score_completions, trl/trainer/grpo_trainer.py lines 2660-2706,
    reproduced statement by statement (it is inline code, not a callable)."""
    per_token_logps_diff = (old - mu) * mask
    per_token_logps_diff = torch.nan_to_num(per_token_logps_diff, nan=0.0)
    if mode in ["sequence_mask", "sequence_truncate"]:
        logps_diff = per_token_logps_diff.sum(dim=-1, keepdim=True)
    else:
        logps_diff = per_token_logps_diff
    ratio = torch.exp(logps_diff)
    if mode in ["sequence_truncate", "token_truncate"]:
        ratio = torch.clamp(ratio, min=clip_min, max=clip_max)
    else:
        min_val = clip_min if clip_min is not None else -math.inf
        max_val = clip_max if clip_max is not None else math.inf
        ratio = ratio.masked_fill((ratio < min_val) | (ratio > max_val), value=0.0)
    return ratio


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("mode", "name", "level"), [("token_truncate", "tis", "token"),
                                                     ("token_mask", "mis", "token"),
                                                     ("sequence_truncate", "tis", "sequence"),
                                                     ("sequence_mask", "mis", "sequence")])
@pytest.mark.parametrize(("clip_min", "clip_max"), [(None, 3.0), (0.8, 1.1), (0.5, None)])
def test_tis_and_mis_equal_trl_vllm_importance_sampling_modes(seed, mode, name, level, clip_min, clip_max):
    logp, old, mu, adv, mask = random_batch(seed)
    if seed == 3:
        mu[1, 2] = float("nan")  # a token the sampler could not score
    ours = get_correction(name, level=level, low=clip_min, high=clip_max)(logp, old, mu, adv, mask).weight
    theirs = trl_vllm_importance_sampling_ratio(old, mu, mask, mode, clip_min, clip_max)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=1e-14, atol=0)


def test_trl_vllm_formula_copy_still_matches_trl_source():
    """The copy above names TRL's own statements; a TRL release that changes them fails here."""
    import inspect

    source = inspect.getsource(trl.GRPOTrainer._generate_and_score_completions)
    for statement in ("per_token_logps_diff = (old_per_token_logps - sampling_per_token_logps) * mask",
                      "per_sequence_logps_diff = per_token_logps_diff.sum(dim=-1, keepdim=True)",
                      "vllm_importance_sampling_ratio = torch.exp(logps_diff)",
                      "invalid_mis_mask = (vllm_importance_sampling_ratio < min_val) | ("):
        assert statement in source
