"""`workbench objectives plot` and `list` through the real CLI, and the geometry drawing function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.objectives import available_objectives, get_objective
from workbench.objectives.plotting import MUS, plot_geometry

runner = CliRunner()


def test_objectives_plot_writes_one_png_per_objective_and_an_overview(tmp_path):
    out = tmp_path / "figures"
    result = runner.invoke(app, ["objectives", "plot", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.split()]
    expected = {out / f"{name}.png" for name in available_objectives()} | {out / "overview.png"}
    assert set(printed) == expected
    for path in printed:
        image = np.asarray(Image.open(path).convert("L"), dtype=float)
        height, width = image.shape
        assert width >= 1000 and height >= 300, f"{path.name} is {width}×{height}"
        assert image.std() > 10, f"{path.name} looks blank"
        # Coloured curves, not only axes: the A>0 blue and A<0 red both appear.
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=int)
        assert ((rgb[..., 2] - rgb[..., 0]) > 80).any() and ((rgb[..., 0] - rgb[..., 2]) > 80).any()


def test_objectives_plot_only_and_unknown_name(tmp_path):
    result = runner.invoke(app, ["objectives", "plot", "--out", str(tmp_path), "--only", "drpo"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drpo.png", "overview.png"]
    result = runner.invoke(app, ["objectives", "plot", "--out", str(tmp_path), "--only", "ppo"])
    assert result.exit_code == 2 and "unknown objective 'ppo'" in result.output


def test_objectives_list_shows_names_papers_and_defaults():
    result = runner.invoke(app, ["objectives", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in [*available_objectives(), "arXiv 2606.09821", "delta=0.15", "clip_ratio=0.0002", "beta=1.0",
                 "advantage_weight='abs'"]:
        assert text in result.output


def test_plot_geometry_draws_both_signs_on_an_axes():
    ax = Figure().subplots()
    axes = plot_geometry(ax, get_objective("drpo"), 0.5, label="δ=0.15")
    assert axes == [ax]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["A > 0, δ=0.15", "A < 0, δ=0.15"]
    x, y = ax.get_lines()[0].get_data()
    assert x.min() == pytest.approx(-0.499) and x.max() == pytest.approx(0.499)
    assert np.interp(0.15, x, y) == pytest.approx(0.0, abs=0.02)  # DRPO's A>0 weight crosses 0 at δ


def test_plot_geometry_on_a_figure_makes_a_panel_per_mu_and_overlays_a_second_setting():
    fig = Figure()
    first = plot_geometry(fig, get_objective("grpo"), MUS)
    second = plot_geometry(fig, get_objective("grpo", epsilon_high=0.28), MUS, linestyle="--")
    assert len(first) == len(MUS) and first == second
    assert all(isinstance(ax, Axes) for ax in first)
    with pytest.raises(ValueError, match="panels"):
        plot_geometry(fig, get_objective("grpo"), 0.5)
    with pytest.raises(ValueError, match="single μ"):
        plot_geometry(Figure().subplots(), get_objective("grpo"), MUS)
