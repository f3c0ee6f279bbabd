"""Mismatch corrections in real tiny runs: the metrics and histogram are logged, the weight really multiplies the
loss on both paths (the workbench's objectives and TRL's own losses), the objective is decoupled (it reads π_old
where it read μ), and a correction costs no model forward."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from runs import tiny_run
from workbench.objectives import registry
from workbench.objectives.corrections import HISTOGRAM, METRIC_NAMES
from workbench.trainer import WorkbenchGRPOTrainer


def records(result):
    scalars = [json.loads(line) for line in (result.run_dir / "scalars.jsonl").read_text().splitlines()]
    histograms = {json.loads(line)["name"] for line in (result.run_dir / "histograms.jsonl").read_text().splitlines()}
    return [s for s in scalars if "loss" in s], histograms


@pytest.mark.parametrize(("objective", "correction"), [
    ("grpo", "tis@verl_fp8"),
    ("drpo", {"name": "mis", "level": "sequence", "low": 0.5, "high": 2.0}),
])
def test_a_short_run_logs_the_correction_metrics(tmp_path, objective, correction):
    result = tiny_run(tmp_path, objective=objective, correction=correction)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    steps, histograms = records(result)
    assert len(steps) == 2
    for step in steps:
        assert set(METRIC_NAMES) <= set(step)
        assert step["correction/raw_ratio_min"] <= step["correction/raw_ratio_mean"] <= step["correction/raw_ratio_max"]
        assert step["correction/raw_ratio_min"] < 1 < step["correction/raw_ratio_max"]  # bf16 rollout: a real w
        assert 0 < step["correction/weight_mean"]
    assert HISTOGRAM in histograms


@pytest.mark.parametrize("objective", ["grpo", "trl:grpo"])
def test_the_weight_multiplies_the_loss_on_both_paths(tmp_path, objective):
    # Truncated at 1e-6, every token's weight is 1e-6: the gradient must shrink by as much (TRL included, whose
    # CPU path applies importance_sampling_ratio only through the flags the trainer sets for the call).
    tiny = tiny_run(tmp_path / "tiny", objective=objective, correction={"name": "tis", "high": 1e-6}, max_steps=1)
    plain = tiny_run(tmp_path / "plain", objective=objective, max_steps=1)
    (tiny_step,), _ = records(tiny)
    (plain_step,), _ = records(plain)
    assert plain_step["grad_norm"] > 1e-2
    assert tiny_step["grad_norm"] < 1e-4 * plain_step["grad_norm"]
    assert tiny_step["correction/frac_truncated"] == 1.0


def count_forwards(monkeypatch) -> list[int]:
    calls = [0]
    original = WorkbenchGRPOTrainer._get_per_token_logps_and_entropies

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WorkbenchGRPOTrainer, "_get_per_token_logps_and_entropies", counted)
    return calls


@pytest.mark.parametrize(("objective", "correction"), [("grpo", "tis@verl_fp8"), ("trl:grpo", "mis@verl_seq"),
                                                       ("grpo", "opsm@trl")])
def test_a_correction_adds_no_model_forward(tmp_path, monkeypatch, objective, correction):
    counts = {}
    for name, setting in (("plain", None), ("corrected", correction)):
        calls = count_forwards(monkeypatch)
        result = tiny_run(tmp_path / name, objective=objective, correction=setting, num_iterations=2)
        assert result.summary["status"] == "finished", result.summary.get("failure")
        counts[name] = calls[0]
    assert counts["plain"] == counts["corrected"] > 0


def test_under_a_correction_the_objective_reads_pi_old_in_place_of_mu(tmp_path, monkeypatch):
    seen = []
    spec = registry.get_spec("grpo")
    original = spec.fn

    def spy(logp, behaviour_logp, advantages, mask, params, generator=None, old_logp=None):
        seen.append((behaviour_logp.clone(), old_logp.clone()))
        return original(logp, behaviour_logp, advantages, mask, params, generator=generator, old_logp=old_logp)

    monkeypatch.setitem(registry._REGISTRY, "grpo", replace(spec, fn=spy))
    result = tiny_run(tmp_path, objective="grpo", correction="tis", num_iterations=2, max_steps=2)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    assert len(seen) == 2
    for reference, old in seen:
        assert torch.equal(reference, old)  # decoupled: the ratio and the clip read π/π_old
