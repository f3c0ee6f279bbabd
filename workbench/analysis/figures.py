"""Figures over training: learning, entropy and shift curves with seed intervals, gradient-weight
histograms, the entropy–performance fit. Each builder returns a Figure, or a sentence saying why the
sweep gives nothing to draw. One colour per objective in every figure (:func:`objective_colours`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..objectives import available_objectives
from . import stats
from .compare import Comparison
from .load import Sweep

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
DPI = 110
HISTOGRAM = "grad_weight/normalised"
HISTOGRAM_BINS = 40


@dataclass
class FigureInput:
    sweep: Sweep
    comparison: Comparison
    colours: dict[str, str]
    rng: np.random.Generator


Builder = Callable[[FigureInput], "Figure | str"]


def objective_colours(objectives: list[str]) -> dict[str, str]:
    """A colour per objective that does not depend on the sweep: registered objectives keep their
    registry position, others (plugins, trl:*) follow in name order."""
    registered = available_objectives()
    order = registered + sorted(set(objectives) - set(registered))
    return {name: PALETTE[order.index(name) % len(PALETTE)] for name in objectives}


def save(fig: Figure, path: Path) -> Path:
    """PNG without the software/date metadata, so the same figure gives the same bytes."""
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def _curves(sweep: Sweep, arm: str, metric: str) -> pd.DataFrame:
    """seed × step table of ``metric`` over the arm's finished runs; steps every seed logged."""
    rows = sweep.steps[(sweep.steps["arm"] == arm) & (sweep.steps["status"] == "finished")]
    if metric not in rows:
        return pd.DataFrame()
    return rows.pivot_table(index="seed", columns="step", values=metric, aggfunc="last").dropna(axis=1)


def _band(ax: Axes, x: np.ndarray, curves: pd.DataFrame, colour: str, label: str, rng: np.random.Generator) -> None:
    centre, low, high = stats.bootstrap_band(curves.to_numpy(), rng)
    ax.plot(x, centre, color=colour, linewidth=1.8, label=f"{label} (n={len(curves)})")
    ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)


def legend_below(fig: Figure, ax: Axes) -> None:
    """One legend under the panels: arm labels are long and would hide the data inside an axes."""
    handles, labels = ax.get_legend_handles_labels()
    columns = 1 if max(map(len, labels)) > 45 else min(len(labels), 4)
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small", frameon=False)


def _curve_figure(data: FigureInput, metric: str, ylabel: str, log: bool = False, wall: bool = False) -> Figure | str:
    comparison, sweep = data.comparison, data.sweep
    drawn = {o: _curves(sweep, arm, metric) for o, arm in sorted(comparison.lead_arms.items())}
    drawn = {o: c for o, c in drawn.items() if c.shape[1] >= 2}
    if not drawn:
        return f"no finished run logged `{metric}` at two or more steps"
    panels = 2 if wall else 1
    fig = Figure(figsize=(5.6 * panels, 3.6 + 0.22 * len(drawn)), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    for objective, curves in drawn.items():
        arm, colour = comparison.lead_arms[objective], data.colours[objective]
        _band(axes[0], curves.columns.to_numpy(), curves, colour, arm, data.rng)
        if wall:
            times = _curves(sweep, arm, "wall_time")[curves.columns]
            _band(axes[1], times.mean(axis=0).to_numpy(), curves, colour, arm, data.rng)
    axes[0].set_xlabel("optimizer step")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if wall:
        axes[1].set_xlabel("wall time (s, mean over seeds)")
    for ax in axes:
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
    legend_below(fig, axes[0])
    return fig


def learning_curves(data: FigureInput) -> Figure | str:
    return _curve_figure(data, data.sweep.metric, f"held-out {data.sweep.metric} (fraction correct)", wall=True)


def entropy_curves(data: FigureInput) -> Figure | str:
    return _curve_figure(data, "entropy/mean", "policy entropy (nats per token)")


def shift_curves(data: FigureInput) -> Figure | str:
    steps = data.sweep.steps
    positive = "tv/mean" in steps and bool((steps["tv/mean"].dropna() > 0).all())
    return _curve_figure(data, "tv/mean", "mean |π − μ| per token (probability)", log=positive)


def gradient_histograms(data: FigureInput) -> Figure | str:
    """g/A per token at the first, middle and last histogram step, seeds summed, objectives overlaid."""
    hist = data.sweep.histograms
    hist = hist[(hist["name"] == HISTOGRAM) & hist["arm"].isin(data.comparison.lead_arms.values())]
    finished = set(data.sweep.finished["run"])
    hist = hist[hist["run"].isin(finished)]
    if hist.empty:
        return f"no finished run logged the `{HISTOGRAM}` histogram"
    steps = {arm: sorted(group["step"].unique()) for arm, group in hist.groupby("arm")}
    stages = ("early", "middle", "late")
    picked = {arm: dict(zip(stages, (s[0], s[len(s) // 2], s[-1]))) for arm, s in steps.items()}
    groups = dict(list(hist.groupby(["arm", "step"])))
    edges = _common_edges(pd.concat([groups[(arm, step)] for arm in picked for step in picked[arm].values()]))
    fig = Figure(figsize=(13, 3.6 + 0.22 * len(picked)), layout="constrained")
    axes = list(fig.subplots(1, 3, sharey=True))
    for ax, stage in zip(axes, stages):
        for objective, arm in sorted(data.comparison.lead_arms.items()):
            if arm in picked:
                counts = _rebin(groups[(arm, picked[arm][stage])], edges)
                density = counts / max(counts.sum(), 1) / np.diff(edges)
                ax.stairs(density, edges, color=data.colours[objective], linewidth=1.6, label=arm)
        for x, style in ((0, "-"), (1, ":")):
            ax.axvline(x, color="0.6", linewidth=0.8, linestyle=style)
        ax.set_xlim(edges[0], edges[-1])  # the reference lines must not stretch the axis
        ax.set_yscale("log")
        ax.set_xlabel("gradient weight per token g / A (1 = plain policy gradient)")
        ax.set_title(f"{stage} (step {', '.join(sorted({str(p[stage]) for p in picked.values()}))})")
    axes[0].set_ylabel("density (log scale)")
    legend_below(fig, axes[0])
    return fig


def _rebin(group: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """Every seed's histogram moved onto ``edges`` (runs bin differently), mass spread evenly within a bin."""
    total = np.zeros(len(edges) - 1)
    for source, counts in zip(group["edges"], group["counts"]):
        cdf = np.concatenate([[0.0], np.cumsum(counts)])
        total += np.diff(np.interp(edges, source, cdf))
    return total


def _common_edges(group: pd.DataFrame) -> np.ndarray:
    """Shared bins over the central 99 % of the mass, so one outlier token does not flatten the plot."""
    x = np.concatenate([(np.asarray(e[:-1]) + np.asarray(e[1:])) / 2 for e in group["edges"]])
    w = np.concatenate([np.asarray(c, dtype=float) for c in group["counts"]])
    order = np.argsort(x, kind="stable")
    cdf = np.cumsum(w[order]) / max(w.sum(), 1)
    low, high = x[order][np.searchsorted(cdf, 0.005)], x[order][min(np.searchsorted(cdf, 0.995), len(x) - 1)]
    pad = max(high - low, 1e-6) * 0.1
    return np.linspace(low - pad, high + pad, HISTOGRAM_BINS + 1)


def entropy_performance(data: FigureInput) -> Figure | str:
    """Evaluation points (H, R) and the fitted R = −a·exp(H) + b, extended to H = 0 (the predicted ceiling)."""
    fits = {o: f for o, f in data.comparison.fits.items() if f is not None}
    if not fits:
        return ("too few evaluation steps with an entropy reading to fit R = −a·exp(H) + b "
                "(3 needed, with spread in H)")
    fig = Figure(figsize=(7.0, 4.4 + 0.22 * len(fits)), layout="constrained")
    ax = fig.subplots()
    sweep = data.sweep
    for objective, fit in sorted(fits.items()):
        arm, colour = data.comparison.lead_arms[objective], data.colours[objective]
        rows = sweep.steps[(sweep.steps["arm"] == arm) & (sweep.steps["status"] == "finished")
                           & (sweep.steps["step"] > 0)].dropna(subset=[sweep.metric, "entropy/mean"])
        ax.scatter(rows["entropy/mean"], rows[sweep.metric], color=colour, s=14, alpha=0.6)
        h = np.linspace(0, rows["entropy/mean"].max() * 1.05, 100)
        ax.plot(h, fit.predict(h), color=colour, linewidth=1.6,
                label=f"{arm}: a={fit.a:.3g}, b={fit.b:.3g}, ceiling {fit.ceiling:.3f} (R²={fit.r2:.2f})")
    ax.set_xlabel("policy entropy H (nats per token)")
    ax.set_ylabel(f"held-out {sweep.metric} (fraction correct)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    legend_below(fig, ax)
    return fig
