"""The figures over swept axes (δ, precision, importances, history) and flagged runs, on a synthetic store:
real run records (RunRecorder) and a real Optuna journal, numbers drawn from a learning-curve model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from workbench.analysis import build_report
from workbench.config import RunConfig

from .contract import add_trial, run_dir, synthetic_sweep, write_synthetic_run
from .pictures import assert_picture

DISTRIBUTIONS = {"objective": CategoricalDistribution(["grpo", "drpo"]),
                 "delta": FloatDistribution(0.01, 20, log=True),
                 "advantage_weight": CategoricalDistribution(["abs", "const"]),
                 "rollout_precision": CategoricalDistribution(["bf16", "fp16"])}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    arms = []
    for precision in ("bf16", "fp16"):
        fields = {"rollout_precision": precision}
        arms += [("grpo", {}, fields), ("drpo", {"delta": 0.15, "advantage_weight": "const"}, fields)]
        arms += [("drpo", {"delta": d, "advantage_weight": "abs"}, fields) for d in (0.05, 0.15, 12.5)]
    rng = np.random.default_rng(0)
    study = synthetic_sweep(root, "axes", arms, [0, 1], 12, DISTRIBUTIONS, rng,
                            skill=lambda o, p, f: 0.5 + 0.1 * (o == "drpo") - 0.05 * (p.get("delta", 0) > 1),
                            # A search (history and importances are drawn for tpe, gp, random only), two grpo arms:
                            # the baseline is named by its setting.
                            spec={"sampler": "tpe", "budget": {"trials": 8}, "baseline": "grpo rollout_precision=bf16"})
    config = RunConfig.parse({"objective": "drpo", "seed": 0}).model_dump(mode="json")
    write_synthetic_run(run_dir(root, study, 0), config, 0.4, rng, 12, status="pruned", flags=("zero_shift",))
    add_trial(root, study, "drpo", [0], DISTRIBUTIONS, {"delta": 0.5, "advantage_weight": "abs"},
              {"rollout_precision": "fp16"}, state=TrialState.PRUNED)
    return build_report("axes", tmp_path_factory.mktemp("report") / "axes", root=root)


def test_swept_axes_get_their_figures(built):
    assert built.skipped == {}
    for stem in ("delta_sensitivity", "precision", "importances", "history"):
        assert_picture(built.figures[stem])


def test_flagged_runs_are_named_and_left_out(built):
    markdown = (built.folder / "report.md").read_text()
    assert ("Flagged runs, 1 of 21 (1 pruned; 1 with zero shift (μ = π on every token, so the objectives could "
            "not differ)): trials/10/seed-0 (drpo, seed 0): pruned, zero_shift.") in markdown
    assert "δ=0.5" not in markdown.split("## Results")[1].split("## Figures")[0]  # the pruned arm has no row
    assert len(built.comparison.arms) == 10 and built.comparison.baseline_arm == "grpo (rollout_precision=bf16)"


def test_a_grid_of_settings_compares_each_arm_within_its_own_setting(tmp_path):
    """stress.yaml's shape: the space sets precision × updates per batch, 'grpo' names plain grpo in each setting;
    grpo with a correction is an arm, compared with plain grpo of its setting; the heatmap has one column per
    setting and the differences figure draws every compared arm."""
    distributions = {"objective": CategoricalDistribution(["grpo", "drpo"]),
                     "rollout_precision": CategoricalDistribution(["bf16", "int4"]),
                     "num_iterations": CategoricalDistribution([2, 8])}
    settings = [{"rollout_precision": p, "num_iterations": n} for p in ("bf16", "int4") for n in (2, 8)]
    arms = [arm for fields in settings for arm in (("grpo", {}, fields), ("grpo", {}, {**fields, "correction":
            "tis@verl_fp8"}), ("drpo", {"delta": 0.15}, fields))]
    # drpo is 0.1 better than grpo where the sampler is int4 and 8 updates per batch, the same elsewhere.
    skill = lambda o, p, f: 0.5 + 0.1 * (o == "drpo" and f["rollout_precision"] == "int4" and f["num_iterations"] == 8)
    space = {"rollout_precision": {"values": ["bf16", "int4"]}, "num_iterations": {"values": [2, 8]}}
    synthetic_sweep(tmp_path / "sweeps", "grid", arms, [0, 1, 2, 3], 6, distributions, np.random.default_rng(1),
                    skill=skill, spec={"baseline": "grpo", "space": space})
    built = build_report("grid", tmp_path / "report", root=tmp_path / "sweeps")
    comparison = built.comparison
    assert len(comparison.baselines) == 4 and comparison.baseline_arm is None
    drpo = {a.setting: a for a in comparison.arms if a.objective == "drpo"}
    assert drpo["rollout_precision=int4, num_iterations=8"].baseline == "grpo (rollout_precision=int4, num_iterations=8)"
    assert drpo["rollout_precision=int4, num_iterations=8"].difference.value == pytest.approx(0.1, abs=0.04)
    assert abs(drpo["rollout_precision=bf16, num_iterations=2"].difference.value) < 0.04
    corrected = [a for a in comparison.arms if "tis" in a.arm]
    assert len(corrected) == 4 and all(a.baseline and a.baseline.startswith("grpo (") for a in corrected)
    markdown = (built.folder / "report.md").read_text()
    assert markdown.count("In the setting rollout_precision=") == 4
    assert "### Setting rollout_precision=int4, num_iterations=8" in markdown
    results = pd.read_csv(built.folder / "results.csv")
    assert set(results["setting"]) == {f"rollout_precision={p}, num_iterations={n}" for p in ("bf16", "int4")
                                       for n in (2, 8)}
    assert results["baseline"].isna().sum() == 4  # the four baselines themselves
    for stem in ("precision", "differences"):
        assert_picture(built.figures[stem])
