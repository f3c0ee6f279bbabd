"""Figures over training: learning, entropy and shift curves with seed intervals, gradient-weight
histograms, the entropy–performance fit, the token regime. Each builder returns a Figure, or a sentence saying why the
sweep gives nothing to draw. One colour per objective in every figure (:func:`objective_colours`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

from . import stats
from .compare import Comparison
from .load import Sweep

# A fixed colour per objective, the same in every figure and every report (no grey: it reads as a reference line).
COLOURS = {"grpo": "#1f77b4", "dppo_tv": "#ff7f0e", "drpo": "#2ca02c", "spo": "#d62728", "pg": "#9467bd",
           "dppo_kl": "#8c564b", "clip_cov": "#e377c2", "kl_cov": "#bcbd22", "cispo": "#17becf"}
OTHER_COLOURS = ("#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#e6550d", "#31a354")
MIN_BAND_SEEDS = 3  # with 2 seeds a 95 % t band is ±12.7 standard errors: the seeds are drawn instead
DPI = 110
HISTOGRAM = "grad_weight/normalised"
HISTOGRAM_BINS = 40
PROFILE_HISTOGRAM = "behaviour/log10_prob"


@dataclass
class FigureInput:
    sweep: Sweep
    comparison: Comparison
    colours: dict[str, str]
    rng: np.random.Generator


Builder = Callable[[FigureInput], "Figure | str"]


# g/A from −1 to 2.5 in bins of 0.025 in every report: 0 (a clipped or masked token) and negative weights (DRPO's
# correction) stay in view; weights beyond either end are counted in the end bins.
GRADIENT_EDGES = np.linspace(-1.0, 2.5, 141)


def objective_colours(objectives: list[str]) -> dict[str, str]:
    """The objectives of :data:`COLOURS` keep their colour everywhere; others (newer objectives, plugins,
    trl:*) share the remaining palette in name order."""
    others = sorted(set(objectives) - set(COLOURS))
    return {name: COLOURS.get(name) or OTHER_COLOURS[others.index(name) % len(OTHER_COLOURS)] for name in objectives}


def save(fig: Figure, path: Path) -> Path:
    """PNG without the software/date metadata, so the same figure gives the same bytes; light zlib
    compression (a third faster to write than the default, files ~8 % larger)."""
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return path


def _curves(sweep: Sweep, arm: str, metric: str) -> pd.DataFrame:
    """seed × step table of ``metric`` over the arm's finished runs; steps every seed logged."""
    rows = sweep.steps[(sweep.steps["arm"] == arm) & (sweep.steps["status"] == "finished")]
    if metric not in rows:
        return pd.DataFrame()
    return rows.pivot_table(index="seed", columns="step", values=metric, aggfunc="last").dropna(axis=1)


def _band(ax: Axes, x: np.ndarray, curves: pd.DataFrame, colour: str, label: str, marker: str | None = None,
          linestyle: str = "-") -> None:
    """Mean over seeds with its 95 % t band, or with each seed's own curve (thin) below MIN_BAND_SEEDS."""
    centre, low, high = stats.mean_band(curves.to_numpy())
    few = len(curves) < MIN_BAND_SEEDS
    seeds = f"n={len(curves)}" + (", seeds drawn" if few and len(curves) > 1 else "")
    ax.plot(x, centre, color=colour, linewidth=1.8, marker=marker, markersize=3.5, label=f"{label} ({seeds})",
            linestyle=linestyle)
    if few and len(curves) > 1:
        ax.plot(x, curves.to_numpy().T, color=colour, linewidth=0.7, alpha=0.45)
    elif low is not None:
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)


def legend_below(fig: Figure, ax: Axes) -> None:
    """One legend under the panels: arm labels are long and would hide the data inside an axes."""
    handles, labels = ax.get_legend_handles_labels()
    # As many columns as fit the figure's width: about 0.07 in per character plus the handle at this size.
    fit = int(fig.get_figwidth() // (0.07 * max(map(len, labels)) + 0.7))
    columns = max(1, min(len(labels), 4, fit))
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small", frameon=False)


ARM_STYLES = ("-", "--", ":", "-.")


def every_arm(data: FigureInput) -> list[tuple[str, str, str]]:
    """(objective, arm, line style) for every arm with finished runs: an objective's colour, one style per setting,
    so a sweep over several axes shows each arm under its full label (never one objective's best arm beside
    another's at a different setting)."""
    out = []
    for objective in sorted({a.objective for a in data.comparison.arms}):
        arms = sorted(a.arm for a in data.comparison.arms if a.objective == objective)
        out += [(objective, arm, ARM_STYLES[i % len(ARM_STYLES)]) for i, arm in enumerate(arms)]
    return out


def _curve_figure(data: FigureInput, metric: str, ylabel: str, log: bool = False, wall: bool = False,
                  marker: str | None = None) -> Figure | str:
    sweep = data.sweep
    drawn = {(o, arm, style): _curves(sweep, arm, metric) for o, arm, style in every_arm(data)}
    drawn = {k: c for k, c in drawn.items() if c.shape[1] >= 2}
    if not drawn:
        return f"no finished run logged `{metric}` at two or more steps"
    panels = 2 if wall else 1
    fig = Figure(figsize=(5.6 * panels, 3.6 + 0.22 * len(drawn)), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    for (objective, arm, style), curves in drawn.items():
        colour = data.colours[objective]
        _band(axes[0], curves.columns.to_numpy(), curves, colour, arm, marker, style)
        if wall:
            times = _curves(sweep, arm, "wall_time")[curves.columns]
            _band(axes[1], times.mean(axis=0).to_numpy(), curves, colour, arm, linestyle=style)
    axes[0].set_xlabel("optimizer step")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if wall:
        axes[1].set_xlabel("wall time (s, mean over seeds)")
    seen = np.concatenate([c.to_numpy().ravel() for c in drawn.values()])
    for ax in axes:
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        _frame_seeds(ax, seen, log)
    legend_below(fig, axes[0])
    return fig


def _frame_seeds(ax: Axes, values: np.ndarray, log: bool) -> None:
    """Y range of the seeds' own values plus a margin: a t band over 3 seeds is wide and must not squash the
    means into a line (a band that leaves the frame is cut at its edge)."""
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0 or values.min() == values.max():
        return
    if log:
        low, high = np.log10(values.min()), np.log10(values.max())
        pad = 0.1 * (high - low)
        ax.set_ylim(10 ** (low - pad), 10 ** (high + pad))
    else:
        pad = 0.1 * (values.max() - values.min())
        ax.set_ylim(values.min() - pad, values.max() + pad)


def learning_curves(data: FigureInput) -> Figure | str:
    return _curve_figure(data, data.sweep.metric, f"held-out {data.sweep.metric} (fraction correct)", wall=True)


def entropy_curves(data: FigureInput) -> Figure | str:
    return _curve_figure(data, "entropy/mean", "policy entropy (nats per token)")


def _one_step_per_batch(sweep: Sweep) -> pd.DataFrame:
    """The steps at which a new batch was sampled (the first update of each): the token profile is the batch's, so
    the other updates of one batch repeat it."""
    if "updates_per_batch" not in sweep.runs:
        return sweep.steps
    period = sweep.runs.set_index("run")["updates_per_batch"].fillna(1).astype(int)
    steps = sweep.steps
    every = steps["run"].map(period).fillna(1).astype(int)
    return steps[(steps["step"] - 1) % every == 0]


def shift_curves(data: FigureInput) -> Figure | str:
    """Mean |π − μ| per step; where a batch serves several updates, only the shift reached at each batch's
    last update (every batch restarts at μ, so step by step the curve would be a sawtooth)."""
    sweep = data.sweep
    period = sweep.runs.set_index("run")["updates_per_batch"] if "updates_per_batch" in sweep.runs else None
    steps, ylabel, marker = sweep.steps, "mean |π − μ| per token (probability)", None
    if period is not None and (period > 1).any():
        steps = steps[steps["step"] % steps["run"].map(period).fillna(1).astype(int) == 0]
        ylabel, marker = "mean |π − μ| at the last update\nof each batch (probability)", "o"
    positive = "tv/mean" in steps and bool((steps["tv/mean"].dropna() > 0).all())
    data = dataclasses.replace(data, sweep=dataclasses.replace(sweep, steps=steps))
    return _curve_figure(data, "tv/mean", ylabel, log=positive, marker=marker)


def gradient_histograms(data: FigureInput) -> Figure | str:
    """g/A per token at the first, middle and last histogram step, seeds summed, objectives overlaid."""
    hist = data.sweep.histograms
    hist = hist[(hist["name"] == HISTOGRAM) & hist["arm"].isin(data.comparison.lead_arms.values())]
    finished = set(data.sweep.finished["run"])
    hist = hist[hist["run"].isin(finished)]
    if hist.empty:
        return f"no finished run logged the `{HISTOGRAM}` histogram"
    hist = _with_mass(hist)
    if hist.empty:  # e.g. every logged step had rewards all alike, so no token had an advantage to weigh
        return f"every `{HISTOGRAM}` histogram the finished runs logged is empty (no token counted)"
    steps = {arm: sorted(group["step"].unique()) for arm, group in hist.groupby("arm")}
    stages = ("early", "middle", "late")
    picked = {arm: dict(zip(stages, (s[0], s[len(s) // 2], s[-1]))) for arm, s in steps.items()}
    groups = dict(list(hist.groupby(["arm", "step"])))
    edges = GRADIENT_EDGES  # one x-range in every report, with 0 and negative weights in view
    fig = Figure(figsize=(13, 3.6 + 0.22 * len(picked)), layout="constrained")
    axes = list(fig.subplots(1, 3, sharey=True))
    for ax, stage in zip(axes, stages):
        for objective, arm in sorted(data.comparison.lead_arms.items()):
            if arm in picked:
                counts = _rebin(groups[(arm, picked[arm][stage])], edges, keep_tails=True)
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


def _with_mass(hist: pd.DataFrame) -> pd.DataFrame:
    """Rows that can be drawn: one more edge than counts, finite edges and at least one token counted."""
    def usable(edges: object, counts: object) -> bool:
        return (isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 >= 2
                and bool(np.isfinite(edges).all()) and float(np.sum(counts)) > 0)
    return hist[np.array([usable(e, c) for e, c in zip(hist["edges"], hist["counts"])], dtype=bool)]


def _rebin(group: pd.DataFrame, edges: np.ndarray, keep_tails: bool = False) -> np.ndarray:
    """Every seed's histogram moved onto ``edges`` (runs bin differently), mass spread evenly within a bin;
    ``keep_tails`` adds the mass beyond either end to the end bins instead of dropping it."""
    total = np.zeros(len(edges) - 1)
    for source, counts in zip(group["edges"], group["counts"]):
        cdf = np.concatenate([[0.0], np.cumsum(counts)])
        at = np.interp(edges, source, cdf)
        if keep_tails:
            at[0], at[-1] = 0.0, cdf[-1]
        total += np.diff(at)
    return total


def entropy_performance(data: FigureInput) -> Figure | str:
    """Evaluation points (H, R) and the fitted R = −a·exp(H) + b over the observed entropy range only, with a 95 %
    percentile bootstrap band (points resampled, refitted; the fit is a hand-made least squares, so is its band)."""
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
        h_obs, r_obs = rows["entropy/mean"].to_numpy(), rows[sweep.metric].to_numpy()
        ax.scatter(h_obs, r_obs, color=colour, s=14, alpha=0.6)
        h = np.linspace(h_obs.min(), h_obs.max(), 100)
        band = []
        for _ in range(400):
            pick = data.rng.integers(0, len(h_obs), len(h_obs))
            refit = stats.entropy_fit(h_obs[pick], r_obs[pick])
            if refit is not None:
                band.append(refit.predict(h))
        if len(band) >= 100:
            low, high = np.percentile(np.array(band), [2.5, 97.5], axis=0)
            ax.fill_between(h, low, high, color=colour, alpha=0.15, linewidth=0)
        ax.plot(h, fit.predict(h), color=colour, linewidth=1.6,
                label=f"{arm}: a={fit.a:.4g}, b={fit.b:.4g} (R²={fit.r2:.2f}, {fit.points} points)")
    ax.set_xlabel("policy entropy H (nats per token)")
    ax.set_ylabel(f"held-out {sweep.metric}")
    ax.grid(alpha=0.3)
    legend_below(fig, ax)
    return fig


def token_regime(data: FigureInput) -> Figure | str:
    """Left: the fraction of sampled tokens with μ < 0.1 over training; right: the log10 μ histogram at the
    first (dashed) and last (solid) histogram step, seeds summed; curves for every arm, histograms for the baseline arm
    and each other objective's best arm."""
    sweep, lead = data.sweep, dict(sorted(data.comparison.lead_arms.items()))
    sweep = dataclasses.replace(sweep, steps=_one_step_per_batch(sweep))  # a batch serving 2 updates is logged twice
    drawn = {(o, arm, style): _curves(sweep, arm, "behaviour/frac_rare") for o, arm, style in every_arm(data)}
    drawn = {k: c for k, c in drawn.items() if c.shape[1] >= 2}
    if not drawn:
        return "the token profile (`behaviour/*`) was not logged by these runs (recorded before the trainer logged it)"
    hist = sweep.histograms
    hist = _with_mass(hist[(hist["name"] == PROFILE_HISTOGRAM) & hist["run"].isin(set(sweep.finished["run"]))])
    fig = Figure(figsize=(11.2 if len(hist) else 5.6, 3.8 + 0.22 * len(drawn)), layout="constrained")
    axes = list(fig.subplots(1, 2 if len(hist) else 1, squeeze=False)[0])
    for (objective, arm, style), curves in drawn.items():
        _band(axes[0], curves.columns.to_numpy(), curves, data.colours[objective], arm, linestyle=style)
    axes[0].axhline(0.1, color="0.5", linewidth=0.9, linestyle="--")
    axes[0].annotate("10 % of sampled tokens", (0.01, 0.1), xycoords=("axes fraction", "data"),
                     xytext=(0, 3), textcoords="offset points", fontsize="x-small", color="0.35")
    axes[0].set_ylim(0, max(0.12, 1.1 * max(float(c.to_numpy().max()) for c in drawn.values())))
    axes[0].yaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("sampled tokens with μ < 0.1")
    if len(hist):
        _profile_histograms(axes[1], hist, lead, data.colours)
    for ax in axes:
        ax.grid(alpha=0.3)
    legend_below(fig, axes[0])
    return fig


def _profile_histograms(ax: Axes, hist: pd.DataFrame, lead: dict[str, str], colours: dict[str, str]) -> None:
    """Share of sampled tokens per log10 μ bin (fixed bins, so seeds add up bin by bin), first and last step."""
    edges = np.asarray(hist["edges"].iloc[0], dtype=float)
    for objective, arm in lead.items():
        rows = hist[hist["arm"] == arm]
        if rows.empty:
            continue
        for step, style in ((rows["step"].min(), "--"), (rows["step"].max(), "-")):
            counts = _rebin(rows[rows["step"] == step], edges)
            ax.stairs(counts / max(counts.sum(), 1), edges, color=colours[objective], linestyle=style, linewidth=1.5)
    for mu in (-2, -1):
        ax.axvline(mu, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("log10 μ of the sampled token (rarer than 10⁻⁶: first bin)")
    ax.set_ylabel("share of sampled tokens (log scale)")
    ax.legend([Line2D([], [], color="0.3", linestyle="--"), Line2D([], [], color="0.3")],
              ["first histogram step", "last histogram step"], fontsize="x-small", loc="upper left")
