"""Fault injection: a launcher killed with SIGKILL, or stopped with SIGINT or SIGTERM sent to it alone or to its whole
process group (Ctrl-C), at random moments (seeded), a journal write cut short between some of them, then a last
launch. A stop signal ends the launch within seconds with one line and status 130 / 143, leaving no trial running and
no run marked running; nothing finished is lost or run twice, the budget is met, and `sweep status` and
`report build` work."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
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
from .test_resume import params

pytestmark = pytest.mark.slow


def cut_a_write(journal) -> None:
    """Append the first part of the last entry, without its newline: a write interrupted by a crash or full disk."""
    last = journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    with open(journal, "ab") as f:
        f.write(last[: len(last) // 2])


# (signal, to the whole process group?) per launch, in order.
ATTACKS = ((signal.SIGKILL, False), (signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGINT, True),
           (signal.SIGTERM, False), (signal.SIGKILL, False))
STOP_WITHIN = 45.0  # seconds from the signal to the launcher's exit, on 2 busy cores (about 6 on an idle machine)


def launch_process(path, root) -> subprocess.Popen:
    """A launcher in its own process group, as a terminal would start it (Ctrl-C reaches the whole group)."""
    env = {**os.environ, "WORKBENCH_SWEEPS": str(root)}
    return subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "launch", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def attack(launcher: subprocess.Popen, signum: int, group: bool) -> None:
    """Send the signal; for SIGINT and SIGTERM, check the launch stopped cleanly: in time, one line, 128 + signal."""
    sent = time.monotonic()
    (os.killpg if group else os.kill)(launcher.pid, signum)
    output = launcher.communicate(timeout=STOP_WITHIN + 60)[0]
    if signum == signal.SIGKILL:
        return  # its workers die with it (parent-death signal)
    assert time.monotonic() - sent < STOP_WITHIN, output
    assert "Traceback" not in output and "Error" not in output, output
    if launcher.returncode == 0 and "done:" in output:
        return  # the sweep ended before the signal
    assert launcher.returncode == 128 + signum, output
    assert output.count(f"stopped by {signal.Signals(signum).name}: ") == 1, output


def no_run_left_running(folder) -> None:
    statuses = {p.parent.relative_to(folder): json.loads(p.read_text())["status"]
                for p in folder.glob("trials/*/seed-*/summary.json")}
    assert "running" not in statuses.values(), statuses


def finished(study) -> dict[int, tuple]:
    return {t.number: (params(t), t.value, t.datetime_complete) for t in study.get_trials()
            if t.state == TrialState.COMPLETE}


def test_random_kills_and_cut_journal_writes_lose_nothing(tmp_path, monkeypatch):
    rng = random.Random(20261125)
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "chaos", objective_space={"drpo": {"delta": {"values": [0.1, 0.2, 0.3]}}})
    journal = sweep_folder("chaos", root) / JOURNAL
    seen: dict[int, tuple] = {}
    for iteration, (signum, group) in enumerate(ATTACKS):
        launcher = launch_process(path, root)
        time.sleep(rng.uniform(2.0, 12.0))
        attack(launcher, signum, group)
        if signum != signal.SIGKILL and journal.exists():  # stopped, not killed: nothing left running
            trials = open_study("chaos", root=root).get_trials()
            assert not [t.number for t in trials if t.state == TrialState.RUNNING]
            no_run_left_running(journal.parent)
        if journal.exists() and iteration % 3 == 0:
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
    no_run_left_running(journal.parent)  # the killed launches' runs were marked interrupted by the next launch

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    status = CliRunner().invoke(app, ["sweep", "status", "chaos"])
    assert status.exit_code == 0 and f"{len(grid)} complete" in status.output, status.output
    report = CliRunner().invoke(app, ["report", "build", "chaos", "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.md").is_file()
