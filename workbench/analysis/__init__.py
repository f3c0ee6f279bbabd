"""Runs → tidy DataFrame → statistics over seeds → figures → report (Markdown + self-contained HTML).

    from workbench.analysis import load_sweep, build_report
    sweep = load_sweep("drpo_vs_dppo")          # sweep.steps: one row per run per step
    built = build_report("drpo_vs_dppo")        # reports/drpo_vs_dppo/report.md, report.html, *.png
"""

from __future__ import annotations

from .compare import Comparison, compare
from .load import Sweep, load_sweep, seed_scores
from .report import Built, build_report

__all__ = ["Built", "Comparison", "Sweep", "build_report", "compare", "load_sweep", "seed_scores"]
