"""Fault injection: a launcher killed with SIGKILL at random moments (seeded), a journal write cut short between
some of the kills, then a last launch. Nothing finished is lost or run twice, the budget is met, and `sweep status`
and `report build` work."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.space import grid_points
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import JOURNAL, open_study, sweep_folder

from .sweepfiles import write_sweep
from .test_resume import launch_process, params

pytestmark = pytest.mark.slow


def cut_a_write(journal) -> None:
    """Append the first part of the last entry, without its newline: a write interrupted by a crash or full disk."""
    last = journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    with open(journal, "ab") as f:
        f.write(last[: len(last) // 2])


def finished(study) -> dict[int, tuple]:
    return {t.number: (params(t), t.value, t.datetime_complete) for t in study.get_trials()
            if t.state == TrialState.COMPLETE}


def test_random_kills_and_cut_journal_writes_lose_nothing(tmp_path, monkeypatch):
    rng = random.Random(20261125)
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "chaos", objective_space={"drpo": {"delta": {"values": [0.1, 0.2, 0.3]}}})
    journal = sweep_folder("chaos", root) / JOURNAL
    seen: dict[int, tuple] = {}
    for iteration in range(4):
        launcher = launch_process(path, root)
        time.sleep(rng.uniform(2.0, 14.0))
        launcher.send_signal(signal.SIGKILL)  # its workers die with it (parent-death signal)
        launcher.wait()
        if journal.exists() and iteration % 2 == 0:
            cut_a_write(journal)
        if journal.exists():
            now = finished(open_study("chaos", root=root))
            assert all(now.get(n) == kept for n, kept in seen.items()), "a finished trial was lost or changed"
            seen = now

    final = launch_process(path, root)
    output = final.communicate(timeout=600)[0]
    assert final.returncode == 0, output
    study = open_study("chaos", root=root)
    trials = study.get_trials()
    now = finished(study)
    assert all(now.get(n) == kept for n, kept in seen.items())
    grid = Counter(tuple(sorted(p.items())) for p in grid_points(load_sweep(path)))
    assert Counter(params(t) for t in trials if t.state == TrialState.COMPLETE) == grid  # budget met, once each
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    status = CliRunner().invoke(app, ["sweep", "status", "chaos"])
    assert status.exit_code == 0 and f"{len(grid)} complete" in status.output, status.output
    report = CliRunner().invoke(app, ["report", "build", "chaos", "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.md").is_file()
