"""Faults outside the configuration: a cut journal, a full disk, unwritable places, an empty sweep file, a database
password, staging folders of killed builds. Everything through the real CLI and real storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import JOURNAL, open_study, sweep_folder
from workbench.sweeps.study import prepare

from .sweepfiles import write_sweep


def cli(root, monkeypatch, *args: str):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    return CliRunner().invoke(app, list(args))


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@pytest.fixture
def read_only(tmp_path):
    """A read-only folder: a read-only tmpfs as root (root ignores permission bits), else mode 555."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_an_empty_sweep_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    line = one_line_error(cli(tmp_path / "sweeps", monkeypatch, "sweep", "launch", str(path)))
    assert str(path) in line and "empty" in line
    assert not (tmp_path / "sweeps").exists()


def test_unwritable_sweeps_root_and_report_destination_are_one_line(tmp_path, monkeypatch, read_only):
    path = write_sweep(tmp_path, "nowhere", objectives=["grpo"], objective_space={})
    line = one_line_error(cli(read_only / "sweeps", monkeypatch, "sweep", "launch", str(path)))
    assert str(read_only / "sweeps") in line

    root = tmp_path / "sweeps"
    prepare(load_sweep(path), sweep_folder("nowhere", root), None, force_new=False)
    line = one_line_error(cli(root, monkeypatch, "report", "build", "nowhere", "--out", str(read_only / "report")))
    assert str(read_only) in line


def test_an_unwritable_runs_folder_is_one_line(tmp_path, monkeypatch, read_only):
    from runs import TINY

    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({**TINY, "output_dir": str(read_only / "runs")}))
    line = one_line_error(cli(tmp_path, monkeypatch, "run", str(config)))
    assert str(read_only) in line


def test_report_and_cache_builds_remove_the_staging_folders_of_killed_builds(tmp_path, monkeypatch):
    from workbench.staging import staging_folder

    dest = tmp_path / "reports" / "r"
    dead, alive = dead_pid(), os.getppid()
    stale = [dest.parent / f".r.building-{dead}", dest.parent / f".r.old-{dead}"]
    live = dest.parent / f".r.building-{alive}"
    for folder in (*stale, live):
        folder.mkdir(parents=True)
    tmp = staging_folder(dest)
    assert tmp.name == f".r.building-{os.getpid()}" and tmp.is_dir()
    assert not any(p.exists() for p in stale) and live.is_dir()  # another build still running: left alone

    from workbench.tasks import get_task
    from workbench.models import tiny_policy_folder

    task = get_task("arithmetic")
    cached = tiny_policy_folder(task)
    leftover = cached.parent / f".{cached.name}.building-{dead}"
    leftover.mkdir()
    assert tiny_policy_folder(task) == cached and not leftover.exists()


@pytest.mark.slow
def test_a_cut_journal_line_is_dropped_before_the_next_launch_appends(tmp_path, monkeypatch, capfd):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "cut", objectives=["grpo"], objective_space={})
    journal = sweep_folder("cut", root) / JOURNAL
    prepare(load_sweep(path), journal.parent, None, force_new=False)
    whole = journal.read_bytes()
    with open(journal, "ab") as f:  # a write cut by a power failure or a full disk
        f.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"user_attr":{"failure":"No space left on')

    result = cli(root, monkeypatch, "sweep", "launch", str(path))
    assert result.exit_code == 0, result.output
    warnings = (result.output + capfd.readouterr().err).count(f"warning: {journal}: dropped a cut last line")
    assert warnings == 1  # said once, by whichever process appended first (a worker)
    assert journal.read_bytes().startswith(whole)
    assert [t.state for t in open_study("cut", root=root).get_trials()] == [TrialState.COMPLETE]
    assert cli(root, monkeypatch, "sweep", "status", "cut").exit_code == 0
    out = tmp_path / "report"
    assert cli(root, monkeypatch, "report", "build", "cut", "--out", str(out)).exit_code == 0
    assert (out / "report.md").is_file()


@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_and_its_trial_reruns_on_the_next_launch(tmp_path, monkeypatch):
    marker = tmp_path / "disk-is-full"
    marker.touch()
    monkeypatch.setenv("WORKBENCH_TEST_DISK_FULL", str(marker))
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "full", objectives=["sweeps.plugins:disk_full", "grpo"], objective_space={})
    line = one_line_error(cli(root, monkeypatch, "sweep", "launch", str(path)))
    folder = sweep_folder("full", root)
    assert "No space left on device" in line and str(folder / "trials" / "0") in line
    trials = open_study("full", root=root).get_trials()
    # The sweep stopped instead of failing every trial; the interrupted one waits for the next launch.
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    assert trials[0].user_attrs["failure"].startswith("interrupted by the machine (No space left on device")

    marker.unlink()  # space freed
    result = cli(root, monkeypatch, "sweep", "launch", str(path))
    assert result.exit_code == 0, result.output
    trials = open_study("full", root=root).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and [t.state for t in trials].count(TrialState.FAIL) == 1
    assert {t.user_attrs["objective"] for t in complete} == {"sweeps.plugins:disk_full", "grpo"}
    assert "0 failed" in result.output  # the interrupted trial is not a failed configuration


@pytest.mark.slow
def test_launch_never_prints_the_database_password(tmp_path, monkeypatch, postgres_url):
    secret = postgres_url.replace("workbench@", "workbench:s3cret-pw@")  # trust authentication ignores it
    path = write_sweep(tmp_path, "masked", objectives=["grpo"], objective_space={})
    env = {**os.environ, "WORKBENCH_SWEEPS": str(tmp_path / "sweeps")}
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", "launch", str(path), "--storage", secret],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr and "workbench:***@" in done.stdout + done.stderr
    assert "[INFO] Running in WANDB offline mode" not in done.stdout + done.stderr
