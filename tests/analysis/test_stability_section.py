"""The report's stability table: per arm the collapsed seeds (summary collapse_step), the seeds that ended below
their own base (failed to learn) and the worst seed's value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.analysis.document import Table
from workbench.analysis.load import Sweep
from workbench.analysis.text import stability


def sweep(rows: list[dict]) -> Sweep:
    runs = pd.DataFrame([{"status": "finished", "objective": r["arm"], **r} for r in rows])
    empty = pd.DataFrame()
    return Sweep("s", Path("."), {}, None, "eval/accuracy", None, [], empty, runs, empty, empty)


def test_collapsed_seeds_and_the_worst_seed_per_arm():
    table = next(b for b in stability(sweep([
        {"arm": "pg", "seed": 0, "final": 0.0, "collapse_step": 36, "stability_recorded": True,
         "failed_to_learn": True},
        {"arm": "pg", "seed": 1, "final": 0.2, "collapse_step": None, "stability_recorded": True,
         "failed_to_learn": False},
        {"arm": "pg", "seed": 2, "final": 0.05, "collapse_step": 80, "stability_recorded": True,
         "failed_to_learn": True},
        {"arm": "grpo", "seed": 0, "final": 0.3, "collapse_step": None, "stability_recorded": True,
         "failed_to_learn": False},
        {"arm": "grpo", "seed": 1, "final": 0.25, "collapse_step": None, "stability_recorded": True,
         "failed_to_learn": False},
    ])) if isinstance(b, Table))
    rows = {row[0]: row for row in table.rows}
    assert rows["pg"][1:5] == ("2/3", "36, 80", "2/3", "0, 2") and rows["pg"][6].endswith("(seed 0)")
    assert rows["grpo"][1:5] == ("0/2", "—", "0/2", "—") and rows["grpo"][6].endswith("(seed 1)")


def test_runs_recorded_before_the_stability_fields_say_so():
    table = next(b for b in stability(sweep([
        {"arm": "pg", "seed": 0, "final": 0.1, "collapse_step": np.nan, "stability_recorded": False},
    ])) if isinstance(b, Table))
    assert table.rows[0][1] == "not recorded"
