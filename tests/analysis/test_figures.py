"""Figures drawn from awkward histogram sets: empty histograms (a step whose rewards were all alike gives no
token an advantage, so g/A counts nothing), runs binned differently, and nothing drawable at all.

Synthetic stores (real run records, real Optuna journal), whose histogram rows are then edited by hand.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from matplotlib.figure import Figure
from optuna.distributions import CategoricalDistribution

from workbench.analysis import compare, figures
from workbench.analysis.load import load_sweep

from .contract import synthetic_sweep

DISTRIBUTIONS = {"objective": CategoricalDistribution(["grpo", "drpo"])}
ARMS = [("grpo", {}, {}), ("drpo", {}, {})]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    synthetic_sweep(root, "awkward", ARMS, [0, 1, 2], 15, DISTRIBUTIONS, np.random.default_rng(0))
    return load_sweep("awkward", root)


def draw(sweep, histograms) -> Figure | str:
    rng = np.random.default_rng(0)
    sweep = dataclasses.replace(sweep, histograms=histograms)
    data = figures.FigureInput(sweep, compare(sweep, "grpo", rng), figures.objective_colours(["drpo", "grpo"]), rng)
    return figures.gradient_histograms(data)


def emptied(hist, where):
    """The rows selected by ``where`` with every count set to 0 (their bins kept)."""
    hist = hist.copy()
    hist.loc[where, "counts"] = hist.loc[where, "counts"].map(lambda counts: [0] * len(counts))
    return hist


def test_empty_histograms_at_the_drawn_steps_are_skipped(sweep):
    hist = sweep.histograms
    normalised = hist["name"] == figures.HISTOGRAM
    # drpo's last step counted nothing; grpo's seed 0 bins in 12 bins over another range.
    hist = emptied(hist, normalised & (hist["objective"] == "drpo") & (hist["step"] == hist["step"].max()))
    regrid = normalised & (hist["objective"] == "grpo") & (hist["seed"] == 0)
    hist.loc[regrid, "edges"] = hist.loc[regrid, "edges"].map(lambda e: np.linspace(-3, 5, 13).tolist())
    hist.loc[regrid, "counts"] = hist.loc[regrid, "counts"].map(lambda c: [0] * 5 + [40, 300, 60] + [0] * 4)
    fig = draw(sweep, hist)
    assert isinstance(fig, Figure)
    late = fig.axes[2].get_title()
    assert late == "late (step 10, 15)", late  # drpo's last drawable step is 10, grpo's 15
    for ax in fig.axes[:3]:
        assert len(ax.patches) == 2 and all(np.isfinite(p.get_path().vertices).all() for p in ax.patches)


def test_only_empty_histograms_give_a_sentence(sweep):
    hist = emptied(sweep.histograms, sweep.histograms["name"] == figures.HISTOGRAM)
    why = draw(sweep, hist)
    assert isinstance(why, str) and "empty" in why and figures.HISTOGRAM in why


def test_malformed_rows_are_not_drawn(sweep):
    hist = sweep.histograms.copy()
    normalised = hist["name"] == figures.HISTOGRAM
    hist.loc[normalised, "edges"] = hist.loc[normalised, "edges"].map(lambda e: e[:-2])  # one edge too few
    assert isinstance(draw(sweep, hist), str)
