"""The objective geometry picture: g/A against the probability shift π−μ, for A > 0 and A < 0.

The figure the DRPO paper explains itself with, drawn for every objective from autograd
(:func:`~workbench.objectives.geometry.gradient_weight`), so plugins get it too. Batch-level
objectives are drawn token by token, each a batch of its own: Clip-Cov then shows PPO's geometry (a
lone token has no covariance to select it by) and KL-Cov the branch of the tokens it penalises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .geometry import gradient_weight
from .registry import Objective, available_objectives, get_objective

MUS = (0.1, 0.5, 0.9)
SHIFT_RANGE = 0.5
POINTS = 121
# A second setting per family, drawn dashed beside the defaults (solid); plugins get their defaults only.
SECOND_SETTING: dict[str, dict[str, float]] = {
    "grpo": {"epsilon_high": 0.28},
    "clip_cov": {"epsilon_high": 0.28},
    "dppo_tv": {"delta": 0.3},
    "dppo_kl": {"delta": 0.1},
    "spo": {"epsilon": 0.3},
    "drpo": {"delta": 0.3},
    "kl_cov": {"beta": 0.5},
    "cispo": {"epsilon_high": 1.0},
    "sapo": {"temperature_pos": 3.0, "temperature_neg": 3.0},
    "gspo": {"epsilon_low": 0.2, "epsilon_high": 0.2},
    "gmpo": {"epsilon_low": 0.2, "epsilon_high": 0.2},
    "dppo_topk_tv": {"delta": 0.3},  # drawn without the sampler's top-K: the binary (K = 0) geometry
    "dppo_topk_kl": {"delta": 0.1},
}
COLOURS = {1.0: "tab:blue", -1.0: "tab:red"}
LINESTYLES = ("-", "--")
SYMBOLS = {"delta": "δ", "epsilon": "ε", "epsilon_low": "ε_lo", "epsilon_high": "ε_hi", "beta": "β",
           "temperature_pos": "τ+", "temperature_neg": "τ−"}
Y_LIMITS = (-2.0, 3.0)


def shift_grid(mu: float, points: int = POINTS) -> np.ndarray:
    """π−μ from −0.5 to 0.5, kept where π stays inside (0, 1)."""
    margin = 1e-3
    return np.linspace(max(-SHIFT_RANGE, margin - mu), min(SHIFT_RANGE, 1 - margin - mu), points)


def plot_geometry(
    target: Axes | Figure,
    objective: Objective,
    mu: float | Sequence[float] = 0.5,
    *,
    linestyle: str = "-",
    label: str | None = None,
) -> list[Axes]:
    """Draw g/A against π−μ for A = +1 and A = −1 at each μ.

    On an Axes: one μ. On a Figure: a panel per μ, created on the first call and drawn over on the
    next ones (a second setting in another line style). Returns the axes drawn on.
    """
    mus = [mu] if isinstance(mu, (int, float)) else list(mu)
    if isinstance(target, Figure):
        axes = target.get_axes() or list(target.subplots(1, len(mus), sharey=True, squeeze=False)[0])
        if len(axes) != len(mus):
            raise ValueError(f"the figure has {len(axes)} panels for {len(mus)} values of μ")
    elif len(mus) == 1:
        axes = [target]
    else:
        raise ValueError("an Axes takes a single μ; pass a Figure for a panel per μ")
    for ax, m in zip(axes, mus):
        shift = shift_grid(m)
        for sign, colour in COLOURS.items():
            g = gradient_weight(objective, m + shift, m, sign).numpy() / sign
            name = f"A {'>' if sign > 0 else '<'} 0" + (f", {label}" if label else "")
            ax.plot(shift, g, color=colour, linestyle=linestyle, linewidth=1.5, label=name)
        _style(ax, m)
    return axes


def _style(ax: Axes, mu: float) -> None:
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.axhline(1.0, color="0.6", linewidth=0.8, linestyle=":")
    ax.axvline(0.0, color="0.6", linewidth=0.8)
    ax.set_ylim(*Y_LIMITS)
    ax.set_xlabel("π − μ")
    ax.set_ylabel("g / A")
    ax.set_title(f"μ = {mu:g}", fontsize="medium")


def settings(name: str) -> list[tuple[Objective, str | None]]:
    """The objectives drawn for ``name``: its defaults and, for the built-ins, a second setting, with labels."""
    changed = SECOND_SETTING.get(name)
    default = get_objective(name)
    if not changed:
        return [(default, None)]
    return [(default, _describe(default, changed)), (get_objective(name, **changed), _describe(default, changed, True))]


def _describe(objective: Objective, changed: dict[str, float], second: bool = False) -> str:
    values = changed if second else {k: getattr(objective.params, k) for k in changed}
    return ", ".join(f"{SYMBOLS.get(k, k)}={v:g}" for k, v in values.items())


def plot_objectives(out_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """One PNG per objective (a panel per μ in MUS) and ``overview.png`` with all of them at μ = 0.5."""
    names = list(names) if names else available_objectives()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = {name: settings(name) for name in names}
    paths = []
    for name, objectives in drawn.items():
        fig = Figure(figsize=(4 * len(MUS), 3.6))
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.82, wspace=0.08)
        for (objective, label), style in zip(objectives, LINESTYLES):
            axes = plot_geometry(fig, objective, MUS, linestyle=style, label=label)
        for ax in axes:
            ax.label_outer()
        axes[0].legend(fontsize="small", loc="lower left")
        fig.suptitle(_title(objectives[0][0]))
        paths.append(_save(fig, out_dir / f"{_file_stem(name)}.png"))

    columns, rows = min(4, len(names)), math.ceil(len(names) / 4)
    fig = Figure(figsize=(3.6 * columns, 0.6 + 3.2 * rows))
    grid = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.35 / (0.6 + 3.2 * rows) * 1.6, top=1 - 0.6 / (0.6 + 3.2 * rows),
                        wspace=0.08, hspace=0.3)
    for ax, (name, objectives) in zip(grid.flat, drawn.items()):
        for (objective, label), style in zip(objectives, LINESTYLES):
            plot_geometry(ax, objective, 0.5, linestyle=style, label=label)
        ax.set_title(_title(objectives[0][0]), fontsize="medium")
        ax.legend(fontsize="x-small", loc="lower left")
        ax.label_outer()
    for ax in list(grid.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("gradient weight g/A against the probability shift π−μ (μ = 0.5)")
    paths.append(_save(fig, out_dir / "overview.png"))
    return paths


def _title(objective: Objective) -> str:
    return f"{objective.name} ({objective.spec.paper})" if objective.spec.paper else objective.name


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path
