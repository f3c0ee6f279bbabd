"""Damaged run folders: the report names every run it could not read and why, counts it as flagged and never
drops a seed silently; a trial whose folders are on another machine is named. No tracebacks."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.cli import app

from .conftest import SWEEP

pytestmark = pytest.mark.slow


def cut(path, keep: int = 7) -> None:
    path.write_bytes(path.read_bytes()[:-keep])


DAMAGE = {
    "cut scalars line": (lambda run: cut(run / "scalars.jsonl"), "scalars.jsonl unreadable from line", 3),
    "deleted summary": (lambda run: (run / "summary.json").unlink(), "summary.json missing", 2),
    "cut summary": (lambda run: cut(run / "summary.json", 40), "summary.json is not valid JSON", 2),
    "missing config": (lambda run: (run / "config.json").unlink(), "config.json missing", 2),
}


def build(root, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "build", SWEEP, "--out", str(out)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return (out / "report.md").read_text(), pd.read_csv(out / "results.csv")


def drpo_run(root):
    folder = root / SWEEP
    journal_trials = sorted((folder / "trials").iterdir(), key=lambda p: int(p.name))
    for trial in journal_trials:
        config = json.loads((trial / "seed-1" / "config.json").read_text())
        if config["objective"] == "drpo":
            return trial / "seed-1"
    raise AssertionError("no drpo run")


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_is_flagged_with_its_reason(sweep_root, tmp_path, monkeypatch, case):
    damage, reason, seeds_left = DAMAGE[case]
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    run = drpo_run(root)
    damage(run)
    report, results = build(root, tmp_path, monkeypatch)
    name = str(run.relative_to(root / SWEEP))
    flagged = report.split("Flagged runs", 1)[1]
    assert f"{name} (drpo, seed 1)" in flagged.split("\n")[0] and reason in flagged.split("\n")[0]
    assert "No run was flagged" not in report
    assert int(results.loc[results["objective"] == "drpo", "seeds"].iloc[0]) == seeds_left


def test_trials_run_on_another_machine_are_named(sweep_root, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    run = drpo_run(root)
    shutil.rmtree(run.parent)  # that machine's trials/<n>/ was never copied here
    monkeypatch.setenv("WORKBENCH_HOST", "machine-b")
    report, results = build(root, tmp_path, monkeypatch)
    trial = run.parent.name
    assert "ran on host " in report and f"copy its trials/{trial}/ folder here" in report
    assert "3 missing" in report
    assert "drpo" not in set(results["objective"])
