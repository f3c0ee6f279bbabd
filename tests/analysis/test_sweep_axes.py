"""The figures over swept axes (δ, precision, importances, history) and flagged runs, on a synthetic store:
real run records (RunRecorder) and a real Optuna journal, numbers drawn from a learning-curve model."""

from __future__ import annotations

import numpy as np
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
                            spec={"sampler": "tpe", "baseline": "grpo rollout_precision=bf16"})
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
