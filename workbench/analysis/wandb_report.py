"""Publish a W&B report beside the local one: the summary and panels over the sweep's runs, a run set
per objective. Optional (the ``wandb-reports`` extra) and never required: the local report is the record.
"""

from __future__ import annotations

import os
import re

from ..tracking import wandb_logged_in
from .compare import Comparison
from .load import Sweep
from .text import headline

PANELS = ("entropy/mean", "tv/mean", "reward/mean")


def skip_reason() -> str | None:
    """Why a W&B report cannot be published from here, or None when it can."""
    mode = os.environ.get("WANDB_MODE")
    if mode in ("offline", "disabled", "dryrun"):
        return f"WANDB_MODE={mode}"
    if not wandb_logged_in():
        return "not logged in to W&B (no WANDB_API_KEY and no netrc entry; run `wandb login`)"
    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        return "wandb-workspaces is not installed (pip install 'workbench[wandb-reports]')"
    return None


def publish(sweep: Sweep, comparison: Comparison) -> str:
    """Save the report on the W&B server and return its URL."""
    import wandb
    import wandb_workspaces.reports.v2 as wr

    project = _project(sweep)
    entity = wandb.Api().default_entity
    runsets = [wr.Runset(entity=entity, project=project, name=objective,
                         filters=f"Config('objective') = '{objective}' and Metric('Group') = '{sweep.name}'")
               for objective in sorted(comparison.lead_arms)]
    summary = re.sub(r"\*\*|`", "", headline(sweep, comparison))
    report = wr.Report(
        entity=entity, project=project, title=f"Sweep {sweep.name}",
        description="Built by `workbench report build`; statistics over seeds are in the local report.",
        blocks=[wr.H1(f"Sweep {sweep.name}"), wr.P(summary),
                wr.PanelGrid(runsets=runsets, panels=[wr.LinePlot(x="Step", y=[metric])
                                                      for metric in (sweep.metric, *PANELS)])],
    )
    report.save()
    return report.url


def _project(sweep: Sweep) -> str:
    """The W&B project the sweep's runs logged to (their RunConfig's tracking settings)."""
    from ..tracking import load_run

    for rel in sweep.runs["run"]:
        tracking = load_run(sweep.folder / rel).config.get("tracking") or {}
        if tracking.get("wandb_project"):
            return tracking["wandb_project"]
    return "workbench"
