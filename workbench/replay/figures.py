"""The figures of ``workbench replay``: cosine matrix, token fractions by μ, and one step's tokens on the
(μ, π − μ) plane coloured by what each objective did to them. Deterministic (fixed layout, no dates)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .gradients import StepReplay  # noqa: E402
from .statistics import CHANGED, FLIPPED, KEPT, MU_BINS, ZERO, token_classes  # noqa: E402

CLASS_COLOURS = {KEPT: "#b0b0b0", CHANGED: "#1f77b4", FLIPPED: "#d62728", ZERO: "#000000"}


def cosine_figure(summary: dict[str, Any]):
    labels = summary["objectives"]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in summary["cosine"]], dtype=float)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if np.isfinite(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(matrix[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine of ∇θ")
    ax.set_title(f"Parameter-gradient cosine, mean over {summary['steps']} step(s)", fontsize=9)
    fig.tight_layout()
    return fig


def token_figure(summary: dict[str, Any]):
    labels = summary["objectives"]
    by = {(r["objective"], r["mu"], r["advantage"]): r for r in summary["tokens"]}
    columns = (("frac_changed", "g/A off the on-policy 1 by >10%"), ("frac_flipped", "g/A < 0 (flipped)"),
               ("frac_zero", "g = 0 (no gradient)"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.6 + 0.3 * len(labels) * 1.2), sharey=True)
    y = np.arange(len(labels))
    height = 0.8 / len(MU_BINS)
    colours = ("#d62728", "#ff7f0e", "#2ca02c")
    for ax, (column, title) in zip(axes, columns):
        for k, (bin_name, _, _) in enumerate(MU_BINS):
            values = [by.get((label, bin_name, "all"), {}).get(column) for label in labels]
            values = [np.nan if v is None else 100 * v for v in values]
            ax.barh(y + (k - 1) * height, values, height=height, color=colours[k], label=bin_name.replace("mu", "μ"))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("% of tokens (A ≠ 0)")
        ax.set_xlim(0, 100)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def scatter_figure(result: StepReplay):
    labels = result.labels
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True, sharey=True)
    mu, pi, adv = result.tokens["mu"], result.tokens["pi"], result.tokens["adv"]
    x = np.log10(np.clip(mu, 1e-8, None))
    shift = pi - mu
    for ax, label in zip(axes.flat, labels):
        classes = token_classes(result.weights[label], adv)
        for cls, colour in CLASS_COLOURS.items():
            chosen = classes == cls
            ax.scatter(x[chosen], shift[chosen], s=4, c=colour, label=cls, linewidths=0)
        ax.set_title(label, fontsize=9)
        ax.axhline(0, color="#888", lw=0.5)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("log10 μ")
    for ax in axes[:, 0]:
        ax.set_ylabel("π − μ")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in CLASS_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Step {result.step}: every token (A ≠ 0) by what each objective did to its weight g/A", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return fig
