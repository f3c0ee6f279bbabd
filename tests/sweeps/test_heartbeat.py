"""Dead machines on PostgreSQL: the heartbeat reaches the database through the storage Optuna really hands back
(a cache wrapped around the RDB storage), and another machine re-runs the trial of a launcher killed mid-trial."""

from __future__ import annotations

import signal
from collections import Counter

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from workbench.sweeps import optuna_private as private
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.space import grid_points
from workbench.sweeps.store import make_storage, open_study, sweep_folder
from workbench.sweeps.study import OWNER, claim, prepare
from workbench.sweeps.trial import heartbeat

from .sweepfiles import write_sweep
from .test_resume import launch_process, params, wait_for


def heartbeat_rows(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats")).scalar_one()
    finally:
        engine.dispose()


def test_a_claimed_trial_beats_into_trial_heartbeats(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_SECONDS", "1")
    path = write_sweep(tmp_path, "beating")
    folder = sweep_folder("beating", tmp_path / "sweeps")
    prepare(load_sweep(path), folder, postgres_url, force_new=False)
    study = optuna.load_study(study_name="beating", storage=make_storage(folder, postgres_url))
    assert not isinstance(private.storage(study), optuna.storages.RDBStorage)  # what Optuna hands back: a cache around it
    before = heartbeat_rows(postgres_url)
    trial = claim(study, bounded=True)
    with heartbeat(study, trial):
        assert heartbeat_rows(postgres_url) == before + 1
    assert private.stale_trial_ids(private.storage(study), private.study_id(study)) == []  # beating: not stale


@pytest.mark.slow
def test_a_killed_launchers_trial_is_rerun_by_another_machine(tmp_path, postgres_url, monkeypatch):
    """Machine a is killed mid-trial; machine b (another host name) runs the rest, waits for a's RUNNING trial
    to go stale instead of exiting, and re-runs it."""
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("WORKBENCH_GRACE_SECONDS", "8")
    path = write_sweep(tmp_path, "dead_machine", objective_space={})  # two trials: grpo, drpo
    roots = {host: tmp_path / host for host in ("a", "b")}
    monkeypatch.setenv("WORKBENCH_HOST", "a")
    first = launch_process(path, roots["a"], "--storage", postgres_url)
    scalars = sweep_folder("dead_machine", roots["a"]) / "trials" / "0" / "seed-0" / "scalars.jsonl"
    wait_for(lambda: scalars.exists() or first.poll() is not None)
    first.send_signal(signal.SIGKILL)
    first.wait()
    study = open_study("dead_machine", root=roots["a"], storage=postgres_url)
    assert study.get_trials()[0].state == TrialState.RUNNING

    monkeypatch.setenv("WORKBENCH_HOST", "b")
    second = launch_process(path, roots["b"], "--storage", postgres_url)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output

    trials = open_study("dead_machine", root=roots["b"], storage=postgres_url).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].system_attrs[OWNER]["host"] == "a"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(map(params, complete)) == Counter(tuple(sorted(p.items())) for p in grid_points(load_sweep(path)))
    rerun = [t for t in complete if t.user_attrs.get("retry_of") == 0]
    assert len(rerun) == 1 and params(rerun[0]) == params(trials[0])
    assert {t.user_attrs["host"] for t in complete} == {"b"}
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
