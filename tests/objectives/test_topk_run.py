"""The top-K path end to end: the sampler's top-K beside μ, π at the same ids from the training forward."""

from __future__ import annotations

import math

import pytest
import torch

from runs import tiny_config, tiny_run
from workbench.config import DEFAULT_TOP_K, ConfigError, RunConfig
from workbench.diagnostics import HISTOGRAMS
from workbench.topk import TopLogprobs
from workbench.tracking import load_run


def test_a_dppo_topk_tv_run_logs_its_metrics_and_histograms_and_scores_pi_from_the_same_pass(tmp_path, monkeypatch):
    checked = []
    original = TopLogprobs.scored_forward

    def spy(store, model, forward, inputs, temperature):
        out, (pi_at, mu_at) = original(store, model, forward, inputs, temperature)
        # Reference: the full logits from an ordinary (unfused) forward of the same weights.
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        keep = inputs["completion_ids"].size(1)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention).logits[:, -keep - 1:-1].float() / temperature
        full = logits.log_softmax(-1)
        mu_top, top_ids = store.lookup(inputs)
        valid = inputs["completion_mask"].bool()
        torch.testing.assert_close(pi_at[..., :-1][valid], full.gather(-1, top_ids)[valid], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mu_at[..., :-1], mu_top)
        assert (top_ids[valid] == inputs["completion_ids"][valid].unsqueeze(-1)).any(-1).float().mean() > 0.5
        checked.append(mu_top.size(-1))
        return out, (pi_at, mu_at)

    monkeypatch.setattr(TopLogprobs, "scored_forward", spy)
    result = tiny_run(tmp_path, objective="dppo_topk_tv", objective_params={"delta": 0.05})
    assert result.summary["status"] == "finished", result.summary.get("failure")
    assert checked and set(checked) == {DEFAULT_TOP_K}
    record = load_run(result.run_dir)
    steps = [row for row in record.scalars if row["step"] > 0]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:
        assert all(math.isfinite(row[k]) for k in ("frac/masked", "tv/mean", "ratio/mean", "behaviour/frac_rare"))
    logged = {(h["step"], h["name"]) for h in record.histograms}
    assert all((step, name) in logged for step in (1, 2) for name in HISTOGRAMS)


def test_top_k_is_off_for_ordinary_objectives_and_required_by_the_top_k_ones(tmp_path):
    assert tiny_config(tmp_path).top_logprobs == 0
    assert tiny_config(tmp_path, objective="dppo_topk_kl").top_logprobs == DEFAULT_TOP_K
    assert tiny_config(tmp_path, objective="grpo", rollout_top_k=4).top_logprobs == 4
    with pytest.raises(ConfigError, match="rollout_top_k: objective 'dppo_topk_tv' needs"):
        RunConfig.parse({"objective": "dppo_topk_tv", "rollout_top_k": 0})
