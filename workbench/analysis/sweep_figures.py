"""Figures across the sweep's axes: objective geometry at the swept settings, δ sensitivity, precision ×
objective, Optuna's parameter importances and optimisation history. A sweep that did not vary an
axis gets a sentence saying so instead of an empty figure.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import optuna
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..objectives import available_objectives, get_objective
from ..objectives.plotting import plot_geometry
from . import stats
from .figures import FigureInput
from .compare import setting_keys
from .load import SYMBOLS, format_setting, objective_rows

PRECISIONS = ("rollout_precision", "train_precision")
STYLES = ("-", "--", ":", "-.")


def _settings_by_objective(data: FigureInput) -> dict[str, list[dict[str, Any]]]:
    """The distinct objective parameter sets each registered objective ran with."""
    registered = set(available_objectives())
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for trial in data.sweep.study.get_trials(deepcopy=False):
        objective = trial.user_attrs.get("objective")
        if objective in registered:
            params = trial.user_attrs.get("objective_params") or {}
            out.setdefault(objective, {})[json.dumps(params, sort_keys=True)] = params
    return {o: [settings[k] for k in sorted(settings)] for o, settings in sorted(out.items())}


def geometry(data: FigureInput) -> Figure | str:
    """g/A against π−μ at μ = 0.5 for each objective at the parameters the sweep actually ran."""
    drawn = _settings_by_objective(data)
    if not drawn:
        return "no objective of the sweep is in the registry (TRL's own losses have no per-token geometry to draw)"
    columns = min(len(drawn), 4)
    rows = -(-len(drawn) // columns)
    fig = Figure(figsize=(3.8 * columns, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
    for ax, (objective, settings) in zip(axes.flat, drawn.items()):
        colour = data.colours.get(objective, "black")
        styles = [(style, width) for width in (1.0, 2.2) for style in STYLES]  # eight distinct line styles
        for k, params in enumerate(settings):  # every setting the sweep ran
            style, width = styles[k % len(styles)]
            label = ", ".join(f"{SYMBOLS.get(k, k)}={v}" for k, v in sorted(params.items())) or "defaults"
            drawn_before = len(ax.lines)
            plot_geometry(ax, get_objective(objective, **params), 0.5, linestyle=style, label=label)
            _recolour(ax.lines[drawn_before:], colour)
            for line in ax.lines[drawn_before:]:
                if line.get_label().startswith("A "):
                    line.set_linewidth(line.get_linewidth() * width / 1.6)
        ax.set_title(objective, color=colour)
        handles = [line for line in ax.lines if line.get_label().startswith("A >")]
        labels = [", ".join(f"{SYMBOLS.get(k, k)}={v}" for k, v in sorted(p.items())) or "defaults"
                  for p in settings][:len(handles)]
        ax.legend(handles, labels, fontsize="xx-small", loc="upper center", bbox_to_anchor=(0.5, -0.18),
                  ncols=2, title="A > 0 full colour, A < 0 light", title_fontsize="xx-small")
    for ax in list(axes.flat)[len(drawn):]:
        ax.set_visible(False)
    return fig


def _recolour(lines: list, colour: str) -> None:
    """The objective's own colour (the same in every figure) instead of the geometry plot's A-sign colours:
    A > 0 in full, A < 0 in a light tint of it."""
    for line in (line for line in lines if line.get_label().startswith("A ")):  # not the reference lines
        positive = line.get_label().startswith("A >")
        line.set_color(colour if positive else to_rgba(colour, 0.45))
        line.set_linewidth(1.8 if positive else 1.5)


def delta_sensitivity(data: FigureInput) -> Figure | str:
    """Final metric against δ (log axis), a line per objective × advantage weighting, seeds of the other
    swept parameters pooled, with 95 % t intervals over seeds."""
    runs = data.sweep.finished
    if "delta" not in runs or runs["delta"].dropna().nunique() < 2:
        return "δ was not swept (fewer than two values of δ among finished runs)"
    runs = runs.dropna(subset=["delta"])
    runs = runs.assign(weighting=runs["advantage_weight"] if "advantage_weight" in runs else "—")
    runs = runs.fillna({"weighting": "—"})
    fig = Figure(figsize=(6.8, 4.4), layout="constrained")
    ax = fig.subplots()
    styles = dict(zip(sorted(runs["weighting"].unique()), STYLES))
    for (objective, weight), line in runs.groupby(["objective", "weighting"], sort=True):
        points = {delta: stats.mean_interval(group["final"].to_numpy()) for delta, group in line.groupby("delta")}
        y = np.array([e.value for e in points.values()])
        # A point without an interval (one seed, or seeds that agree) gets no bar rather than a zero-wide one.
        bounds = np.array([(e.low, e.high) if e.has_interval else (e.value, e.value) for e in points.values()])
        label = objective if weight == "—" else f"{objective}, {weight} weighting"
        ax.errorbar(list(points), y, yerr=[y - bounds[:, 0], bounds[:, 1] - y], marker="o", capsize=3,
                    color=data.colours[objective], linestyle=styles[weight], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("δ (trust-region size, log scale)")
    ax.set_ylabel(f"final held-out {data.sweep.metric} (fraction correct)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def precision_heatmap(data: FigureInput) -> Figure | str:
    """Mean final metric per objective (and correction, when swept) × precision; when the sweep's space also
    sets other RunConfig fields (stress.yaml: precision × updates per batch), one column per setting."""
    runs = data.sweep.finished
    column = next((c for c in PRECISIONS if c in runs and runs[c].nunique() >= 2), None)
    if column is None:
        return "neither the rollout nor the train precision was swept"
    fields = [column, *(k for k in setting_keys(data.sweep) if k != column and runs[k].nunique() >= 2)]
    label = " × ".join(k.replace("_", " ") for k in fields)
    # Columns in the sweep's own order of each field's values (their first appearance), not alphabetical.
    runs = runs.sort_values(fields, key=lambda values: values.map(list(dict.fromkeys(values)).index), kind="stable")
    runs = runs.assign(row=objective_rows(runs), column=[" × ".join(format_setting(v) for v in values) for values in
                                                         zip(*(runs[k] for k in fields))])
    table = runs.pivot_table(index="row", columns="column", values="final", aggfunc="mean", sort=False)
    # Colours stretch over the cell means alone, so each cell also prints its interval over seeds:
    # two colours far apart can still be the same result.
    cells = runs.groupby(["row", "column"])["final"].apply(lambda x: stats.mean_interval(x.to_numpy()))
    fig = Figure(figsize=(1.6 + 1.6 * table.shape[1], 1.2 + 0.75 * table.shape[0]), layout="constrained")
    ax = fig.subplots()
    # The colour scale spans at least the widest cell interval around the cells' centre, so noise-sized
    # differences between cells stay noise-coloured instead of filling the whole scale.
    widest = max((c.high - c.low for c in cells if c.has_interval), default=0.0)
    centre, spread = float(np.nanmean(table.to_numpy())), float(np.nanmax(table.to_numpy()) - np.nanmin(table.to_numpy()))
    half = max(spread, widest) / 2 or 0.01
    image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto", vmin=centre - half, vmax=centre + half)
    ax.set_xticks(range(table.shape[1]), table.columns)
    ax.set_yticks(range(table.shape[0]), table.index)
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        if np.isfinite(value):
            light = value < np.nanmean(table.to_numpy())
            cell = cells[(table.index[i], table.columns[j])]
            interval = f"\n[{cell.low:.3f}, {cell.high:.3f}]" if cell.has_interval else f"\n({cell.why})"
            ax.text(j, i, f"{value:.3f}{interval}", ha="center", va="center", fontsize=9,
                    color="white" if light else "black")
    ax.set_xlabel(label)
    ax.set_ylabel("objective")
    fig.colorbar(image, ax=ax, label=f"mean final {data.sweep.metric}")
    return fig


def differences(data: FigureInput) -> Figure | str:
    """Each arm's paired difference from its baseline with its 95% interval, the equivalence margin shaded: the
    verdicts of the results table at a glance (one panel row per setting when the baseline is per setting)."""
    compared = [a for a in data.comparison.arms if a.difference is not None and a.difference.has_interval]
    if not compared:
        return "no arm has an interval for its difference from a baseline"
    margin = data.comparison.margin
    fig = Figure(figsize=(7.5, 1.0 + 0.32 * (len(compared) + 2 * len({a.setting for a in compared}))),
                 layout="constrained")
    ax = fig.subplots()
    labels, y = [], 0.0
    for setting in dict.fromkeys(a.setting for a in compared):
        if setting:
            ax.text(0.01, y, setting, transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=8,
                    style="italic")
            y += 1
        for a in (a for a in compared if a.setting == setting):
            d, colour = a.difference, data.colours.get(a.objective, "black")
            ax.errorbar(d.value, y, xerr=[[d.value - d.low], [d.high - d.value]], fmt="o", color=colour, capsize=3)
            labels.append((y, f"{a.arm.split(' (')[0]}  [{a.verdict}]"))
            y += 1
        y += 0.5
    ax.axvspan(-margin, margin, color="#2ca02c", alpha=0.12, label=f"equivalence margin ±{margin:g}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks([p for p, _ in labels], [t for _, t in labels], fontsize=8)
    ax.set_ylim(y - 0.5, -1)
    baselines = ", ".join(sorted({a.baseline.split(' (')[0] for a in compared if a.baseline}))
    ax.set_xlabel(f"Δ final {data.sweep.metric} vs baseline ({baselines}), 95% CI")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


SEARCHING = ("tpe", "gp", "random")
MIN_SEARCH_TRIALS = 10


def _not_a_search(data: FigureInput) -> str | None:
    """Why a search figure would show noise as structure: a grid (every setting once, no search) or too few trials."""
    sampler = data.sweep.spec.sampler
    complete = int((data.sweep.trials["state"] == "COMPLETE").sum())
    if sampler not in SEARCHING:
        return (f"the sweep's sampler is {sampler}: every setting ran once, nothing was searched, and differences "
                "between its trials are the seed noise the results table tests")
    if complete < MIN_SEARCH_TRIALS:
        return f"{complete} complete trials: fewer than {MIN_SEARCH_TRIALS} cannot show what the search found"
    return None


def parameter_importances(data: FigureInput) -> Figure | str:
    """PED-ANOVA importances (Optuna's evaluator that needs no scikit-learn) over the complete trials."""
    if (why := _not_a_search(data)) is not None:
        return why
    study = data.sweep.study
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = sorted({p for t in complete for p in t.distributions})
    if len(names) < 2 or len(complete) < 4:
        return (f"importances need at least two swept parameters and four complete trials "
                f"(this sweep: {len(names)} and {len(complete)})")
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), normalize=True)
    except (ValueError, RuntimeError) as err:
        return f"Optuna could not compute importances ({err})"
    fig = Figure(figsize=(6.0, 0.9 + 0.45 * len(importances)), layout="constrained")
    ax = fig.subplots()
    labels = list(importances)[::-1]
    ax.barh(labels, [importances[k] for k in labels], color="#4c72b0")
    ax.set_xlabel("importance for the trial value (PED-ANOVA, normalised to sum to 1)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def optimisation_history(data: FigureInput) -> Figure | str:
    """Trial values in trial order, coloured by objective, with the best value so far."""
    if (why := _not_a_search(data)) is not None:
        return why
    complete = data.sweep.trials[(data.sweep.trials["state"] == "COMPLETE") & data.sweep.trials["value"].notna()]
    if len(complete) <= complete["objective"].nunique():
        return "one complete trial per objective: there was no search over parameters to show the progress of"
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for objective, group in complete.groupby("objective"):
        ax.scatter(group["trial"], group["value"], color=data.colours[objective], label=objective, s=24, zorder=3)
    ordered = complete.sort_values("trial")
    ax.step(ordered["trial"], ordered["value"].cummax(), where="post", color="0.3", linewidth=1.2,
            label="best so far")
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"trial value: {data.sweep.metric} aggregated over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return fig
