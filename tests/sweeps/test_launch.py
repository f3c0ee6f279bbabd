"""`workbench sweep launch` end to end with real Optuna storage and real TRL steps: grids, budgets, workers,
failure isolation, and `sweep status`. Assertions read the study, not the console."""

from __future__ import annotations

import pytest
import wandb_files
from runs import TINY
from optuna.trial import TrialState
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.space import grid_points
from workbench.sweeps.spec import load_sweep
from workbench.sweeps.store import open_study, sweep_folder
from workbench.sweeps.trial import aggregate
from workbench.tracking import load_run

from .sweepfiles import write_sweep

pytestmark = pytest.mark.slow


def cli(tmp_path, monkeypatch, *args: str):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(tmp_path / "sweeps"))
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return result


def fixed(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_grid_runs_every_combination_once_with_its_seeds_and_groups_wandb(tmp_path, monkeypatch):
    base = {**TINY, "tracking": {"wandb_mode": "offline"}}
    path = write_sweep(tmp_path, "grid", seeds=[3, 5], base=base)
    cli(tmp_path, monkeypatch, "sweep", "launch", str(path))
    spec, study = load_sweep(path), open_study("grid", root=tmp_path / "sweeps")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert sorted(map(fixed, trials)) == sorted(tuple(sorted(p.items())) for p in grid_points(spec))
    folder = sweep_folder("grid", tmp_path / "sweeps")
    for t in trials:
        attrs = t.user_attrs
        assert attrs["seeds"] == [3, 5] and set(attrs["run_dirs"]) == set(attrs["seed_values"]) == {"3", "5"}
        assert t.value == pytest.approx(aggregate(list(attrs["seed_values"].values()), "mean"))
        for seed, rel in attrs["run_dirs"].items():
            record = load_run(folder / rel)
            assert record.config["seed"] == int(seed) and record.config["objective"] == attrs["objective"]
            assert spec.metric == "eval/p_correct"  # the tiny policy on an enumerable task: the exact metric
            assert record.summary["eval"][spec.metric] == attrs["seed_values"][seed]
    run = next(r.run for r in wandb_files.records(wandb_files.run_file(folder / trials[1].user_attrs["run_dirs"]["5"]))
               if r.WhichOneof("record_type") == "run")
    assert run.run_group == "grid" and run.display_name == "grid-trial1-seed5"

    status = cli(tmp_path, monkeypatch, "sweep", "status", "grid").output
    assert "drpo delta=0.3" in status and "2/2" in status and "best configuration per objective" in status


def test_two_workers_finish_a_four_trial_grid_without_duplicates(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, "pair", objective_space={"drpo": {"delta": {"values": [0.1, 0.2, 0.3]}}})
    cli(tmp_path, monkeypatch, "sweep", "launch", str(path), "--workers", "2")
    trials = open_study("pair", root=tmp_path / "sweeps").get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({fixed(t) for t in trials}) == 4
    assert len({t.system_attrs["workbench:owner"]["pid"] for t in trials}) == 2  # both workers took trials


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random"])
def test_a_search_sweep_respects_its_budget(tmp_path, monkeypatch, sampler):
    path = write_sweep(tmp_path, "tpe", sampler=sampler, budget={"trials": 3}, objective_space={},
                       space={"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}})
    cli(tmp_path, monkeypatch, "sweep", "launch", str(path), "--workers", "2")
    trials = open_study("tpe", root=tmp_path / "sweeps").get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(1e-4 <= t.params["learning_rate"] <= 1e-2 for t in trials)
    # Launching again spends nothing more: the budget counts every launch.
    cli(tmp_path, monkeypatch, "sweep", "launch", str(path))
    assert len(open_study("tpe", root=tmp_path / "sweeps").get_trials()) == 3


def test_a_nan_trial_fails_with_its_reason_and_the_sweep_goes_on(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, "nan", objectives=["grpo", "sweeps.plugins:nan_loss"], objective_space={})
    output = cli(tmp_path, monkeypatch, "sweep", "launch", str(path)).output
    assert "1 complete" in output and "1 failed" in output
    grpo, nan = open_study("nan", root=tmp_path / "sweeps").get_trials()
    assert grpo.state == TrialState.COMPLETE and nan.state == TrialState.FAIL
    assert nan.user_attrs["failure"].startswith("seed 0: FloatingPointError: loss is nan")


def test_median_pruner_stops_a_trial_whose_seed_averaged_curve_falls_behind(tmp_path, monkeypatch):
    """Sampling at temperature 8 answers at random: once two trials have finished, the median pruner stops it."""
    path = write_sweep(tmp_path, "pruned", objectives=["grpo"], objective_space={}, seeds=[0, 1],
                       space={"temperature": {"values": [0.7, 0.8, 8.0]}}, pruner="median",
                       base={**TINY, "eval_every": 1, "eval_prompts": 16, "eval_samples": 2,
                             "tracking": {"wandb_mode": "disabled"}})
    cli(tmp_path, monkeypatch, "sweep", "launch", str(path))
    trials = open_study("pruned", root=tmp_path / "sweeps").get_trials()
    states = {t.params["temperature"]: t.state for t in trials}
    assert states == {0.7: TrialState.COMPLETE, 0.8: TrialState.COMPLETE, 8.0: TrialState.PRUNED}
    hot = next(t for t in trials if t.params["temperature"] == 8.0)
    assert set(hot.user_attrs["run_dirs"]) == {"0"}  # stopped inside its first seed: the second never ran
    record = load_run(sweep_folder("pruned", tmp_path / "sweeps") / hot.user_attrs["run_dirs"]["0"])
    assert record.summary["status"] == "pruned"
