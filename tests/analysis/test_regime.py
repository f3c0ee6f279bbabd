"""The token regime section, the rare-token warning, runs from before the profile, the per-batch shift figure.

Synthetic stores (real run records, real Optuna journal) whose token profile is drawn so that a known
fraction of sampled tokens has μ < 0.1.
"""

from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution

from workbench.analysis import build_report, compare, figures, regime
from workbench.analysis.load import load_sweep

from .contract import synthetic_sweep
from .pictures import assert_picture

DISTRIBUTIONS = {"objective": CategoricalDistribution(["grpo", "drpo"])}
ARMS = [("grpo", {}, {"num_iterations": 4}), ("drpo", {}, {"num_iterations": 4})]


def make(root, name: str, rare: float | None, steps: int = 20):
    synthetic_sweep(root, name, ARMS, [0, 1, 2], steps, DISTRIBUTIONS, np.random.default_rng(0), rare=rare)
    return load_sweep(name, root)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("sweeps")


def test_profile_table_averages_the_first_and_last_tenth(root):
    sweep = make(root, "longtail", rare=0.3)
    profile = regime.sweep_profile(sweep)
    assert profile.runs == 6 and profile.unlogged == 0
    assert list(profile.table.index) == ["drpo", "grpo"] and (profile.table["runs"] == 3).all()
    # First tenth of 20 steps = steps 1–2, last = 19–20, each run's mean, then the mean over runs.
    steps = sweep.steps[sweep.steps["objective"] == "grpo"]
    first = steps[steps["step"].isin([1, 2])].groupby("run")["behaviour/frac_rare"].mean().mean()
    last = steps[steps["step"].isin([19, 20])].groupby("run")["behaviour/frac_rare"].mean().mean()
    assert profile.table.loc["grpo", "behaviour/frac_rare first"] == pytest.approx(first)
    assert profile.table.loc["grpo", "behaviour/frac_rare last"] == pytest.approx(last)
    assert 0.25 < profile.frac_rare < 0.35 and regime.warning(profile) is None


def test_few_rare_tokens_warn_in_the_summary(root, tmp_path):
    make(root, "peaked", rare=0.04)
    built = build_report("peaked", tmp_path / "peaked", root=root)
    summary = (built.folder / "report.md").read_text().split("## Results")[0]
    assert "few rare tokens: ratio- and divergence-based trust regions act almost alike in this regime" in \
        summary.lower()
    table = (built.folder / "report.md").read_text().split("### Token regime")[1]
    assert "| grpo | 3 |" in table and "μ < 0.1 (first → last tenth)" in table
    assert_picture(built.figures["token_regime"])


def test_runs_from_before_the_profile_still_report(root, tmp_path):
    make(root, "old", rare=None)
    built = build_report("old", tmp_path / "old", root=root)
    markdown = (built.folder / "report.md").read_text()
    assert "was not logged by these runs" in markdown
    assert "token_regime" in built.skipped and "few rare tokens" not in markdown.lower()


def test_shift_is_drawn_once_per_generated_batch(root):
    """num_iterations = 4: every batch serves 4 updates, so the figure shows steps 4, 8, … only."""
    sweep = make(root, "stale", rare=0.3, steps=24)
    assert (sweep.runs["updates_per_batch"] == 4).all()
    rng = np.random.default_rng(0)
    data = figures.FigureInput(sweep, compare(sweep, "grpo", rng), figures.objective_colours(["drpo", "grpo"]), rng)
    fig = figures.shift_curves(data)
    means = [line for line in fig.axes[0].lines if line.get_linewidth() > 1]
    assert len(means) == 2 and all(list(line.get_xdata()) == [4, 8, 12, 16, 20, 24] for line in means)
    assert "last update" in fig.axes[0].get_ylabel()


def test_colours_are_fixed_per_objective():
    one, two = figures.objective_colours(["grpo", "drpo"]), figures.objective_colours(["drpo", "spo", "x:y", "grpo"])
    assert one["grpo"] == two["grpo"] and one["drpo"] == two["drpo"]
    assert len(set(two.values())) == 4
