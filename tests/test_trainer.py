"""The pin's guard: what TRL 1.16 hands `_compute_loss`, and what its log-prob helper returns."""

from __future__ import annotations

import pytest
import torch

from runs import tiny_config
from workbench.runner import prepare_run, train
from workbench.trainer import REQUIRED_INPUTS, WorkbenchGRPOTrainer

# The keys TRL 1.16.0 puts in `inputs` on our path (rollout_func, no reference model, no vLLM).
TRL_INPUT_KEYS = {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
                  "num_items_in_batch", "sampling_per_token_logps"}


def test_trl_inputs_and_logprob_helper_are_what_the_trainer_expects(tmp_path, monkeypatch):
    seen = {}
    original_loss = WorkbenchGRPOTrainer._compute_loss
    original_logps = WorkbenchGRPOTrainer._get_per_token_logps_and_entropies

    def spy_loss(self, model, inputs):
        seen.setdefault("inputs", {k: (tuple(v.shape) if torch.is_tensor(v) else v) for k, v in inputs.items()})
        return original_loss(self, model, inputs)

    def spy_logps(self, model, input_ids, attention_mask, logits_to_keep, **kwargs):
        out = original_logps(self, model, input_ids, attention_mask, logits_to_keep, **kwargs)
        seen.setdefault("logps", (input_ids.shape[0], logits_to_keep, out))
        return out

    monkeypatch.setattr(WorkbenchGRPOTrainer, "_compute_loss", spy_loss)
    monkeypatch.setattr(WorkbenchGRPOTrainer, "_get_per_token_logps_and_entropies", spy_logps)
    cfg = tiny_config(tmp_path, max_steps=1, eval_every=1)
    result = train(prepare_run(cfg))
    assert result.summary["status"] == "finished", result.summary.get("failure")

    inputs = seen["inputs"]
    assert set(inputs) == TRL_INPUT_KEYS, f"TRL changed the inputs it hands _compute_loss: {sorted(inputs)}"
    assert set(REQUIRED_INPUTS) <= set(inputs)
    batch = cfg.prompts_per_step * cfg.num_generations
    completion = inputs["completion_ids"]
    assert completion[0] == batch and inputs["completion_mask"] == completion
    assert inputs["sampling_per_token_logps"] == completion
    assert inputs["advantages"] == (batch,)

    rows, keep, (logps, entropies, aux) = seen["logps"]
    assert isinstance(logps, torch.Tensor) and logps.shape == (rows, keep)
    assert entropies is not None and entropies.shape == (rows, keep)
    assert aux is None


def test_behaviour_profile_on_hand_built_behaviour_probabilities():
    from workbench.diagnostics import behaviour_profile

    mu = torch.tensor([[0.5, 0.05, 0.005, 0.9], [0.2, 0.001, 0.08, 0.3]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    profile = behaviour_profile(mu.log(), valid)
    # valid μ: 0.5, 0.05, 0.005, 0.2, 0.001, 0.08, 0.3 → 4 below 0.1, 2 below 0.01, median 0.08
    assert profile["behaviour/frac_rare"] == pytest.approx(4 / 7)
    assert profile["behaviour/frac_very_rare"] == pytest.approx(2 / 7)
    assert profile["behaviour/median_prob"] == pytest.approx(0.08)
    assert behaviour_profile(mu.log(), torch.zeros_like(valid)) == {}
