"""Resume and scale-out: SIGKILL in the middle of a trial then relaunch; a changed sweep file; PostgreSQL shared
by two launches. Assertions read the storage's contents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import psutil
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.space import grid_points
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import JOURNAL, open_study, sweep_folder
from workbench.sweeps.study import prepare

from .sweepfiles import write_sweep

OWNER = "workbench:owner"


def launch_process(path, root, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WORKBENCH_SWEEPS": str(root)}
    return subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "launch", str(path), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def params(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


@pytest.mark.slow
def test_sigkill_mid_trial_then_relaunch_reruns_it_once(tmp_path, monkeypatch):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "killed", seeds=[0, 1])
    folder = sweep_folder("killed", root)
    first = launch_process(path, root)
    wait_for(lambda: (folder / "trials" / "1" / "seed-0" / "scalars.jsonl").exists() or first.poll() is not None)
    first.send_signal(signal.SIGKILL)
    first.wait()

    before = open_study("killed", root=root).get_trials()
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING]
    worker = before[1].system_attrs[OWNER]["pid"]
    wait_for(lambda: not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE, 30)

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    result = CliRunner().invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    assert "re-queued trials interrupted by a dead process: [1]" in result.output

    trials = open_study("killed", root=root).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(map(params, complete)) == Counter(tuple(sorted(p.items())) for p in grid_points(load_sweep(path)))
    assert trials[0].state == TrialState.COMPLETE and trials[0].datetime_complete == before[0].datetime_complete
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["failure"].startswith("interrupted")
    rerun = [t for t in complete if t.user_attrs.get("retry_of") == 1]
    assert len(rerun) == 1 and params(rerun[0]) == params(before[1]) and rerun[0].number == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert set(rerun[0].user_attrs["seed_values"]) == {"0", "1"}


def test_a_changed_sweep_file_is_refused_unless_force_new(tmp_path, monkeypatch):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "edited")
    folder = sweep_folder("edited", root)
    prepare(load_sweep(path), folder, None, force_new=False)
    journal = (folder / JOURNAL).read_bytes()
    path = write_sweep(tmp_path, "edited", seeds=[0, 1], objective_space={"drpo": {"delta": {"values": [0.2]}}},
                       workers=2)  # workers may change between launches: not part of the sweep's identity

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    result = CliRunner().invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "objective_space.drpo.delta.values ([0.1, 0.3] → [0.2])" in message and "seeds ([0] → [0, 1])" in message
    assert "workers" not in message and "--force-new" in message
    assert (folder / JOURNAL).read_bytes() == journal

    study = prepare(load_sweep(path), folder, None, force_new=True)
    archived = list(root.glob("edited.old-*"))
    assert len(archived) == 1 and (archived[0] / JOURNAL).read_bytes() == journal
    assert study.user_attrs["spec"]["seeds"] == [0, 1] and len(study.get_trials()) == 2


@pytest.mark.slow
def test_two_launches_share_a_sweep_through_postgresql(tmp_path, postgres_url):
    """Two `sweep launch` processes with their own folders (two machines) and one database."""
    path = write_sweep(tmp_path, "shared", objective_space={"drpo": {"delta": {"values": [0.1, 0.2, 0.3]}}})
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    processes = [launch_process(path, root, "--storage", postgres_url) for root in machines]
    for process in processes:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output

    trials = open_study("shared", root=machines[0]).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({params(t) for t in trials}) == 4
    owners = {t.system_attrs[OWNER]["pid"] for t in trials}
    assert len(owners) == 2, "one launch did all the work"
    ran_here = {m: {int(p.name) for p in sweep_folder("shared", m).glob("trials/*")} for m in machines}
    assert ran_here[machines[0]] | ran_here[machines[1]] == {0, 1, 2, 3}
    assert not ran_here[machines[0]] & ran_here[machines[1]]
