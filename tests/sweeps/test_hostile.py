"""A hostile user's round on sweeps (issue 21): a database password never reaches a message, whatever the URL's
shape; a second launcher cannot move a sweep another launcher is running (--force-new), on a journal or on
PostgreSQL, and a dead launcher blocks nothing."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest
from runs import TINY
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import host_name, open_study, sweep_folder
from workbench.sweeps.study import prepare

from .sweepfiles import write_sweep
from .test_resume import launch_process, wait_for

SECRET = "Sup3rS3cret"


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("url", [
    f"postgresql://user:{SECRET}@localhost:notaport/db",  # does not parse
    f"postgresql://user:{SECRET}@[::1",  # does not parse
    f"postgresql://user:{SECRET[:5]}@{SECRET[5:]}@127.0.0.1:1/db",  # an unescaped @ in the password
    f"postgresql://user@127.0.0.1:1/db?sslmode=disable&sslpassword={SECRET}",  # a secret query parameter
    f"postgresql://user:{SECRET}@127.0.0.1:1/db?password={SECRET}x",
])
def test_a_storage_password_is_masked_in_every_message(tmp_path, monkeypatch, url):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(tmp_path / "sweeps"))
    path = write_sweep(tmp_path, "secret", objectives=["grpo"], objective_space={})
    line = one_line_error(CliRunner().invoke(app, ["sweep", "launch", str(path), "--storage", url]))
    assert "storage" in line and "***" in line
    for part in (SECRET, SECRET[:5], SECRET[5:]):
        assert part not in line, line
    assert not (tmp_path / "sweeps").exists()


# ---- item 2: a second launcher cannot move a running sweep ------------------------------------------------------


def running_trial(root, name):
    def check() -> bool:
        try:
            study = open_study(name, root=root)
        except Exception:  # noqa: BLE001 - not created yet
            return False
        return any(t.state.name == "RUNNING" for t in study.get_trials())
    return check


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_force_new_refuses_while_another_launcher_lives_and_a_dead_one_blocks_nothing(tmp_path, monkeypatch, request,
                                                                                     storage):
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else None
    name = f"busy_{storage}"
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, name, seeds=[0, 1, 2])
    args = ("--storage", url) if url else ()
    if url:  # two machines sharing the database: the other launcher is judged by its beat, not its pid
        monkeypatch.setenv("WORKBENCH_HOST", "machine-a")
        monkeypatch.setenv("WORKBENCH_HEARTBEAT_SECONDS", "2")
        monkeypatch.setenv("WORKBENCH_GRACE_SECONDS", "10")
    first = launch_process(path, root, *args)
    try:
        wait_for(running_trial(root, name), timeout=240)
        monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
        if url:
            monkeypatch.setenv("WORKBENCH_HOST", "machine-b")
        result = CliRunner().invoke(app, ["sweep", "launch", str(path), "--force-new", *args])
        line = one_line_error(result)
        host = "machine-a" if url else host_name()
        assert "--force-new" in line and f"pid {first.pid} on host {host}" in line, line
        assert sweep_folder(name, root).is_dir() and not list(root.glob(f"{name}.old-*"))  # nothing moved
        assert first.poll() is None  # and the running launch goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    if url:
        time.sleep(10)  # machine-a's last beat goes stale after the grace period
    before = len(open_study(name, root=root).get_trials())
    prepare(load_sweep(path), sweep_folder(name, root), url, force_new=True)  # the dead launcher blocks nothing
    archives = list(root.glob(f"{name}.old-*"))
    assert len(archives) == 1
    assert len(open_study(archives[0].name, root=root).get_trials()) == before  # readable, from its own journal
    assert open_study(name, root=root).user_attrs["spec_hash"]  # and the new study is there


# ---- item 3: SIGINT to the launcher alone stops the sweep ----------------------------------------------------------


@pytest.mark.slow
def test_sigint_to_the_launcher_alone_stops_workers_requeues_and_records_interrupted(tmp_path):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "halt", seeds=[0, 1],
                       base={**TINY, "max_steps": 8, "tracking": {"wandb_mode": "disabled"}})
    folder = sweep_folder("halt", root)
    launcher = launch_process(path, root)
    wait_for(lambda: (folder / "trials" / "0" / "seed-0" / "scalars.jsonl").exists() or launcher.poll() is not None,
             timeout=240)
    sent = time.monotonic()
    launcher.send_signal(signal.SIGINT)  # to the launcher alone, as `kill -INT` or a supervisor does
    output = launcher.communicate(timeout=120)[0]
    assert time.monotonic() - sent < 45, output  # about 6 s on an idle machine
    assert launcher.returncode == 130, output
    assert "Traceback" not in output and output.count("stopped by SIGINT: ") == 1, output
    assert "interrupted trial(s) [0] re-queued" in output, output

    trials = open_study("halt", root=root).get_trials()
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["failure"].startswith("interrupted: the sweep was "
                                                                                        "stopped")
    retries = [t for t in trials if t.system_attrs.get("retry_history") == [0]]
    assert len(retries) == 1 and retries[0].state.name == "WAITING"  # re-queued once
    assert not [t for t in trials if t.state.name == "RUNNING"]
    worker = trials[0].system_attrs["workbench:owner"]["pid"]
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
    summary = json.loads((folder / "trials" / "0" / "seed-0" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
