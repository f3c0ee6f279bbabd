"""Seeds until resolved (sweeps.looks): a real sweep in looks, its report, a killed launcher resumed at the right look,
and a look's gate opened on the journal and on PostgreSQL, never twice."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pandas as pd
import psutil
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps import looks
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import open_study, sweep_folder
from workbench.sweeps.study import claim, prepare

from .sweepfiles import write_sweep
from .test_resume import launch_process, wait_for

SEQUENTIAL = {"initial": 3, "step": 3, "max": 6, "until": "resolved"}
# grpo and pg on policy compute the same gradient (they match at once); drpo with 2 updates a batch differs by chance.
ARMS = {"objectives": ["grpo", "pg", "drpo"], "objective_space": {}, "space": {"num_iterations": {"values": [1, 2]}},
        "baseline": "grpo", "families": {"primary": {"arms": ["drpo"]}, "secondary": "rest"}, "seeds": SEQUENTIAL}


def runs_per_arm(study) -> dict[str, list[int]]:
    """Grid point → the seeds its finished trials ran (in order, repeats kept)."""
    seeds: dict[str, list[int]] = {}
    for t in study.get_trials():
        if t.state == TrialState.COMPLETE:
            seeds.setdefault(looks.point_key(t.params), []).extend(int(s) for s in t.user_attrs["seed_values"])
    return seeds


@pytest.mark.slow
def test_a_sweep_in_looks_runs_3_or_6_paired_seeds_per_arm_and_its_report_says_why(tmp_path, monkeypatch):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "looks", **ARMS, workers=2)
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    study = open_study("looks", root=root)
    seeds = runs_per_arm(study)
    assert len(seeds) == 6 and all(sorted(s) in ([0, 1, 2], [0, 1, 2, 3, 4, 5]) for s in seeds.values()), seeds
    assert sum(len(s) == 6 for s in seeds.values()) >= 2, "no comparison went on to the second look"
    gates = [t for t in study.get_trials() if looks.is_gate(t)]
    assert [(t.user_attrs["gate"], t.state) for t in gates] == [(2, TrialState.PRUNED)]
    for key in gates[0].user_attrs["arms"]:  # every arm given seeds 3–5 ran them, and only those
        assert sorted(seeds[key]) == [0, 1, 2, 3, 4, 5]

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "build", "looks", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    compared = table[table["baseline"].notna()]
    assert set(compared["family"]) == {"primary", "secondary"}
    assert {"p_adjusted", "tost_p_adjusted", "look", "compared_seeds", "stop"} <= set(table.columns)
    assert (compared["p_adjusted"].dropna() >= compared.loc[compared["p_adjusted"].notna(), "p"] - 1e-12).all()
    assert set(compared["compared_seeds"]) <= {3, 6} and set(compared["stop"]) <= {"resolved", "max reached"}
    report = (out / "report.md").read_text()
    assert "Looks" in report and "O'Brien–Fleming" in report and "Holm" in report
    assert "why it stopped" in report


def _run_look_one(study, claimed) -> None:
    """Tell look 1's claimed trials their values: drpo with 2 updates a batch 0.1 above, the rest on grpo's."""
    for trial in claimed:
        params = json.loads(trial.user_attrs["point"])
        shift = 0.1 if params["objective"] == "drpo" and params["num_iterations"] == 2 else 0.0
        values = {str(s): 0.3 + 0.01 * s * (1 + s % 2) + shift for s in trial.user_attrs["seeds"]}
        trial.set_user_attr("seed_values", values)
        study.tell(trial, sum(values.values()) / len(values))


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_the_gate_opens_its_look_once_on_either_storage(tmp_path, storage, request):
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else None
    path = write_sweep(tmp_path, f"gate{storage}", **ARMS)
    spec = load_sweep(path)
    study = prepare(spec, sweep_folder(spec.name, tmp_path), url, force_new=False)
    first = claim(study, bounded=True)
    assert not looks.is_gate(first)
    # While a trial of look 1 runs, nothing hands out the gate.
    others = []
    while (trial := claim(study, bounded=True)) is not None:
        assert not looks.is_gate(trial)
        others.append(trial)
    _run_look_one(study, [first, *others])
    gate = claim(study, bounded=True)
    assert looks.is_gate(gate)
    looks.open_look(study, gate, spec)
    second = [t for t in study.get_trials() if t.user_attrs.get("look") == 2]
    # At 3 of 6 seeds the O'Brien–Fleming boundary asks for p < 0.005: nothing with 3 seeds reaches it, so every
    # comparison goes on, with its baseline.
    assert Counter(t.user_attrs["point"] for t in second) == Counter(gate.user_attrs["arms"]) and len(second) == 6
    assert all(t.user_attrs["seeds"] == [3, 4, 5] and t.state == TrialState.WAITING for t in second)
    # The holder died before ending the gate: its re-run adds no trial twice.
    before = len(study.get_trials())
    assert looks.enqueue_look(study, spec, 2) == gate.user_attrs["arms"]
    assert len(study.get_trials()) == before
    assert not [t for t in study.get_trials() if looks.is_gate(t) and t.state == TrialState.WAITING]  # 2 looks


@pytest.mark.slow
def test_a_killed_launcher_resumes_at_the_look_it_stopped_in(tmp_path, monkeypatch):
    root = tmp_path / "sweeps"
    path = write_sweep(tmp_path, "resumed", **ARMS, workers=2)
    folder = sweep_folder("resumed", root)
    first = launch_process(path, root)

    def in_look_two() -> bool:
        if first.poll() is not None:
            return True
        try:
            return any(t.user_attrs.get("look") == 2 and t.state == TrialState.RUNNING
                       for t in open_study("resumed", root=root).get_trials())
        except Exception:  # noqa: BLE001 - the study is still being created
            return False
    wait_for(in_look_two, timeout=900)
    assert first.poll() is None, first.communicate()[0]  # it was still running look 2
    first.send_signal(signal.SIGKILL)
    first.wait()
    # Its workers die with it (parent-death signal): wait, or the relaunch sees their trials still owned.
    owners = [t.system_attrs["workbench:owner"]["pid"] for t in open_study("resumed", root=root).get_trials()
              if t.state == TrialState.RUNNING and "workbench:owner" in t.system_attrs]
    wait_for(lambda: all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                         for p in owners), 60)

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(root))
    result = CliRunner().invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    study = open_study("resumed", root=root)
    seeds = runs_per_arm(study)
    assert all(sorted(s) in ([0, 1, 2], [0, 1, 2, 3, 4, 5]) for s in seeds.values()), seeds  # no seed twice
    assert not [t for t in study.get_trials() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len([t for t in study.get_trials() if looks.is_gate(t) and t.state == TrialState.PRUNED]) == 1
    assert json.loads((folder / "sweep.json").read_text())["spec"]["seeds"] == SEQUENTIAL
