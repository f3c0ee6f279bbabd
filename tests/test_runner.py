"""End to end on the CPU: real TRL steps, the real rollout engine, the run record and W&B offline files."""

from __future__ import annotations

import math

import pytest
import torch

import wandb_files
from runs import tiny_config, tiny_run
from workbench.objectives import available_objectives, get_objective
from workbench.runner import prepare_run, train
from workbench.tracking import load_run
from workbench.diagnostics import HISTOGRAMS, SCALARS


def objective_metric_names(name: str) -> set[str]:
    """The metrics a family reports, read from the family itself on a toy batch."""
    logp = torch.log(torch.rand(2, 3) * 0.9 + 0.05)
    out = get_objective(name)(logp, logp + 0.1, torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    return set(out.metrics)


@pytest.mark.slow
@pytest.mark.parametrize("objective", [*available_objectives(), "trl:dapo"])
def test_every_objective_leaves_a_full_record(tmp_path, objective):
    result = tiny_run(tmp_path, objective=objective, tracking={"wandb_mode": "offline"})
    assert result.summary["status"] == "finished", result.summary.get("failure")
    record = load_run(result.run_dir)
    steps = [row for row in record.scalars if row["step"] > 0]
    assert [row["step"] for row in steps] == [1, 2]
    expected = set(SCALARS) | ({"tv/mean"} if objective.startswith("trl:") else objective_metric_names(objective))
    for row in steps:
        assert expected <= set(row), expected - set(row)
        assert all(math.isfinite(row[k]) for k in expected)
    assert "eval/accuracy" in steps[-1] and "eval/greedy_accuracy" in steps[-1]
    assert record.scalars[0]["step"] == 0 and "eval/accuracy" in record.scalars[0]  # the base policy
    assert record.summary["eval"]["eval/accuracy"] == steps[-1]["eval/accuracy"]
    assert record.summary["seed"] == 0 and record.summary["versions"]["trl"] == "1.16.0"

    logged = {(h["step"], h["name"]) for h in record.histograms}
    wanted = HISTOGRAMS if not objective.startswith("trl:") else ("shift/signed", "entropy/tokens")
    for step in (1, 2):
        for name in wanted:
            assert (step, name) in logged
    assert all(sum(h["counts"]) > 0 for h in record.histograms if h["name"] in ("grad_weight/all", "shift/signed"))

    # The W&B offline run holds the same histograms and the config.
    run_file = wandb_files.run_file(result.run_dir)
    rows = wandb_files.history(run_file)
    hist_keys = {k.removesuffix("/_type") for row in rows for k, v in row.items() if v == "histogram"}
    assert set(wanted) <= hist_keys
    assert any(row.get("tv/mean") == pytest.approx(steps[0]["tv/mean"]) for row in rows)
    info = wandb_files.run_info(run_file)
    assert info["config"]["objective"] == objective and info["job_type"] == objective


def test_gradient_weight_histogram_matches_the_objective(tmp_path):
    """On the first update π = the trained model; g/A of pg is r, so the normalised weights sit near 1."""
    result = tiny_run(tmp_path, objective="pg", max_steps=1, eval_every=1)
    record = load_run(result.run_dir)
    hist = next(h for h in record.histograms if h["name"] == "grad_weight/normalised")
    centres = [(a + b) / 2 for a, b in zip(hist["edges"][:-1], hist["edges"][1:])]
    mean = sum(c * n for c, n in zip(centres, hist["counts"])) / sum(hist["counts"])
    assert mean == pytest.approx(1.0, abs=0.1)


def test_bf16_rollout_shifts_mu_and_fp32_does_not(tmp_path):
    bf16 = load_run(tiny_run(tmp_path / "bf16", rollout_precision="bf16", max_steps=1, eval_every=1).run_dir)
    fp32 = load_run(tiny_run(tmp_path / "fp32", rollout_precision="fp32", max_steps=1, eval_every=1).run_dir)
    assert bf16.scalars[1]["tv/mean"] > 1e-6 and bf16.scalars[1]["frac/off_policy"] > 0.5
    assert fp32.scalars[1]["tv/max"] < 1e-5 and fp32.scalars[1]["frac/off_policy"] == 0.0
    assert "zero_shift" in fp32.summary["flags"] and "zero_shift" not in bf16.summary["flags"]


def test_stale_updates_shift_pi_away_from_mu(tmp_path):
    """num_iterations=2: the second update reuses the batch after π moved, μ stays frozen."""
    record = load_run(tiny_run(tmp_path, rollout_precision="fp32", num_iterations=2, max_steps=2,
                               learning_rate=1e-2, prompts_per_step=4).run_dir)
    first, second = record.scalars[1], record.scalars[2]
    assert first["frac/off_policy"] == 0.0
    assert second["tv/mean"] > 1e-4 and second["frac/off_policy"] > 0.5
    assert "zero_shift" not in record.summary["flags"]


def test_same_config_and_seed_give_identical_scalars(tmp_path):
    def scalars(folder):
        record = load_run(tiny_run(tmp_path / folder, max_steps=3, eval_every=3, seed=7).run_dir)
        return [{k: v for k, v in row.items() if k not in ("wall_time", "step_time")} for row in record.scalars]

    assert scalars("a") == scalars("b")


def test_nan_loss_is_recorded_as_a_failure(tmp_path):
    result = tiny_run(tmp_path, objective="pg", learning_rate=1e6, rollout_precision="fp16", max_steps=6,
                      eval_every=6)
    if result.summary["status"] == "finished":
        pytest.skip("this learning rate did not diverge on this machine")
    assert result.summary["status"] == "failed"
    assert "\n" not in result.summary["failure"]
    assert load_run(result.run_dir).summary["status"] == "failed"


def test_lora_run_trains_the_adapter_and_leaves_the_base_weights(tmp_path):
    prepared = prepare_run(tiny_config(tmp_path, objective="drpo", lora={"r": 4, "alpha": 8}, max_steps=2))
    before = {n: p.detach().clone() for n, p in prepared.model.named_parameters()}
    result = train(prepared)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    after = dict(prepared.model.named_parameters())
    changed = {n for n, p in before.items() if not torch.equal(p, after[n].detach())}
    assert changed and all("lora_" in n for n in changed)
    assert load_run(result.run_dir).scalars[1]["tv/mean"] > 0  # the bf16 sampler copy carries the adapter too
