"""The rollout engine's sources of mismatch: quantised weights, stale weights (lag), truncated sampling."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.gguf_files import require_gguf
from runs import tiny_config
from workbench import runner
from workbench.config import ConfigError, LoraSettings, RunConfig
from workbench.models import load_policy
from workbench.models.quantise import quantisable
from workbench.rollout import RolloutEngine, Truncation, generate, trainable_snapshot
from workbench.tasks import get_task
from workbench.tracking import load_run


@pytest.fixture(scope="module")
def tiny():
    task = get_task("noisy_arithmetic")
    return (*load_policy("tiny", None, task), task)


def gguf_round_trip(weight: torch.Tensor, qtype_name: str) -> torch.Tensor:
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    qtype = GGMLQuantizationType[qtype_name]
    return torch.from_numpy(dequantize(quantize(weight.detach().float().numpy(), qtype), qtype))


@pytest.mark.parametrize("precision, qtype", [("int8", "Q8_0"), ("int4", "Q4_1")])
def test_quantised_sampler_holds_the_gguf_round_trip(tiny, precision, qtype):
    require_gguf()
    policy, tokenizer, _ = tiny
    policy = copy.deepcopy(policy)
    with torch.no_grad():  # weights that moved since the copy was taken: sync must serve these
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    engine = RolloutEngine(policy, tokenizer, precision, 4, 1.0)
    engine.sync(policy)
    source, served = policy.state_dict(), engine.sampler.state_dict()
    quantised = 0
    for name, weight in source.items():
        assert served[name].dtype == torch.float32  # weight-only: fp32 compute
        if quantisable(name, weight):
            expected = gguf_round_trip(weight, qtype)
            assert torch.equal(served[name], expected), name
            assert not torch.equal(expected, weight)
            quantised += 1
        else:  # norms stay in full precision
            assert torch.equal(served[name], weight), name
    assert quantised >= 2 * 7  # every linear layer of both blocks, the embedding


def test_quantised_lora_sampler_keeps_the_adapter_in_full_precision():
    require_gguf()
    task = get_task("noisy_arithmetic")
    policy, tokenizer = load_policy("tiny", LoraSettings(r=4, alpha=8), task)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    engine = RolloutEngine(policy, tokenizer, "int4", 4, 1.0)
    engine.sync(policy)
    engine.sync(policy)  # the frozen base is quantised once; a second sync serves the same
    source, served = policy.state_dict(), engine.sampler.state_dict()
    lora = [n for n in source if "lora_" in n]
    assert lora and all(torch.equal(served[n], source[n]) for n in lora)
    base = [n for n in source if n.endswith("base_layer.weight")]
    assert base and all(torch.equal(served[n], gguf_round_trip(source[n], "Q4_1")) for n in base)


def sequence_logps(model: torch.nn.Module, prompt: list[int], completion: list[int], temperature: float) -> torch.Tensor:
    """log π of each completion token given the prompt, by a plain forward (no cache, no padding)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
    return F.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).squeeze(1)


class Recording(RolloutEngine):
    """The engine, recording the weights at the start of every optimizer step and every batch it samples."""

    weights: dict[int, dict[str, torch.Tensor]]
    batches: list[tuple[int, int, dict]]

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step] = trainable_snapshot(model)

    def __call__(self, prompts, trainer):
        out = super().__call__(prompts, trainer)
        self.batches.append((trainer.state.global_step, self.served_lag, out))
        return out


def recorded_run(tmp_path, monkeypatch, **fields):
    engines: list[Recording] = []

    def make(*args, **kwargs):
        engine = Recording(*args, **kwargs)
        engine.weights, engine.batches = {}, []
        engines.append(engine)
        return engine

    monkeypatch.setattr(runner, "RolloutEngine", make)
    run = runner.prepare_run(tiny_config(tmp_path, **fields))
    result = runner.train(run)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    return run, engines[0], load_run(result.run_dir)


@pytest.mark.parametrize("lag, iterations", [(2, 1), (3, 2)])
def test_lagged_batches_are_sampled_by_the_weights_of_k_steps_earlier(tmp_path, monkeypatch, lag, iterations):
    run, engine, record = recorded_run(tmp_path, monkeypatch, rollout_precision="fp32", rollout_lag=lag,
                                       num_iterations=iterations, max_steps=6, eval_every=6, learning_rate=5e-2)
    model = copy.deepcopy(engine.sampler).eval()  # a plain copy (the trainer patches the policy's forward)
    generations = [step for step, _, _ in engine.batches]
    assert generations == list(range(0, 6, iterations))
    moved = 0
    for step, served_lag, out in engine.batches:
        served = max(0, step - lag)
        assert served_lag == step - served
        model.load_state_dict(engine.weights[served], strict=False)
        for prompt, completion, mu in zip(out["prompt_ids"], out["completion_ids"], out["logprobs"]):
            expected = sequence_logps(model, prompt, completion, 1.0)
            torch.testing.assert_close(torch.tensor(mu), expected, rtol=0, atol=2e-5)
        if served != step:  # and not the current weights: the lag is real
            model.load_state_dict(engine.weights[step], strict=False)
            now = sequence_logps(model, out["prompt_ids"][0], out["completion_ids"][0], 1.0)
            moved += not torch.allclose(torch.tensor(out["logprobs"][0]), now, atol=1e-3)
    assert moved > 0
    assert len(engine.snapshots) <= lag  # the ring holds at most k copies
    lags = [row["rollout/lag"] for row in record.scalars if "rollout/lag" in row]
    assert max(lags) == lag and lags[0] == 0
    # The run's stability is in its summary (tests/test_tracking.py has the curves).
    norms = [row["grad_norm"] for row in record.scalars if "grad_norm" in row]
    assert record.summary["max_grad_norm"] == max(norms) and record.summary["nonfinite_loss"] is False
    assert "collapse_step" in record.summary


class Today(RolloutEngine):
    """The engine as it was before lag existed: the live weights at every generation, no callback hooks."""

    def __call__(self, prompts, trainer):
        self.sampler.to(trainer.accelerator.device)
        self.sync(trainer.accelerator.unwrap_model(trainer.model))
        return self.sample(prompts)

    def on_pre_optimizer_step(self, *args, **kwargs):
        pass


def test_lag_zero_is_the_unlagged_engine_bit_for_bit(tmp_path, monkeypatch):
    fields = dict(max_steps=3, eval_every=3, num_iterations=2, task="noisy_arithmetic")
    engines = []

    def default_engine(*args, **kwargs):
        engines.append(RolloutEngine(*args, **kwargs))
        return engines[-1]

    monkeypatch.setattr(runner, "RolloutEngine", default_engine)
    default = load_run(runner.train(runner.prepare_run(tiny_config(tmp_path / "a", **fields))).run_dir)
    assert engines[0].lag == 0 and not engines[0].snapshots  # lag 0 keeps no copy
    monkeypatch.setattr(runner, "RolloutEngine", Today)
    today = load_run(runner.train(runner.prepare_run(tiny_config(tmp_path / "b", **fields))).run_dir)
    assert default.summary["status"] == today.summary["status"] == "finished"

    def values(record):
        return [{k: v for k, v in row.items() if k not in ("wall_time", "step_time")} for row in record.scalars]

    assert values(default) == values(today)
    assert [h["counts"] for h in default.histograms] == [h["counts"] for h in today.histograms]


def kept_set(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """transformers' nucleus: drop the tokens whose ascending cumulative probability is ≤ 1 − top_p."""
    ordered, index = probs.sort()
    drop = ordered.cumsum(-1) <= 1 - top_p
    drop[-1] = False
    keep = torch.ones_like(probs, dtype=torch.bool)
    keep[index[drop]] = False
    return keep


@pytest.mark.parametrize("mode", ["processed", "raw"])
def test_top_p_samples_inside_the_kept_set_and_reports_the_chosen_mu(tiny, mode):
    policy, tokenizer, task = tiny
    torch.manual_seed(0)
    prompts = [p["prompt"] for p in task.train_dataset(0).select(range(16))] * 4
    out = generate(policy, tokenizer, prompts, 5, 1.0, truncation=Truncation(top_p=0.7, logprobs=mode))
    checked = renormalised = 0
    for prompt, completion, mu in zip(out.prompt_ids, out.completion_ids, out.logprobs):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            probs = policy(ids).logits[0, len(prompt) - 1:-1].float().softmax(-1)
        for t, token in enumerate(completion):
            ordered = probs[t].sort().values.cumsum(-1)
            if ((ordered - 0.3).abs() < 1e-5).any():
                continue  # at the boundary float rounding decides; not this test's business
            keep = kept_set(probs[t], 0.7)
            assert keep[token], "a token outside the kept set was sampled"
            expected = probs[t, token] / probs[t][keep].sum() if mode == "processed" else probs[t, token]
            assert mu[t] == pytest.approx(float(expected.log()), abs=2e-5)
            checked += 1
            renormalised += bool(keep.sum() < keep.numel())
    assert checked > 200 and renormalised > 50


def test_untruncated_processed_mu_is_the_untruncated_one(tiny):
    policy, tokenizer, task = tiny
    prompts = [p["prompt"] for p in task.train_dataset(0).select(range(8))]
    torch.manual_seed(1)
    plain = generate(policy, tokenizer, prompts, 5, 1.0)
    torch.manual_seed(1)
    off = generate(policy, tokenizer, prompts, 5, 1.0, truncation=Truncation(logprobs="processed"))
    assert plain.completion_ids == off.completion_ids and plain.logprobs == off.logprobs


@pytest.mark.parametrize("field, value", [("sampling_top_p", 0.0), ("sampling_top_p", 1.5), ("sampling_top_k", -1),
                                          ("sampling_min_p", 1.0), ("rollout_lag", -2),
                                          ("behaviour_logprobs", "renormalised"), ("rollout_precision", "int3")])
def test_bad_sampling_settings_are_one_line_errors(field, value):
    with pytest.raises(ConfigError) as err:
        RunConfig.parse({field: value}, source="run.yaml")
    message = str(err.value)
    assert message.startswith(f"run.yaml: {field}") and "\n" not in message


def test_truncation_needs_no_rollout_top_k():
    # rollout_top_k (log-probs returned for dppo_topk) and sampling_top_k (truncation) are separate fields.
    cfg = RunConfig.parse({"objective": "dppo_topk_tv", "sampling_top_k": 5})
    assert cfg.top_logprobs == 8 and cfg.sampling_top_k == 5


def test_every_rollout_precision_the_config_takes_has_a_sampler_dtype():
    from workbench.config import ROLLOUT_PRECISIONS
    from workbench.rollout import ROLLOUT_DTYPES

    assert tuple(ROLLOUT_DTYPES) == ROLLOUT_PRECISIONS
