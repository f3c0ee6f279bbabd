"""`workbench report build` on a real small sweep (launched by `workbench sweep launch`, see conftest.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.store import open_study, sweep_folder
from workbench.tracking import RunRecorder, load_run

from .conftest import SWEEP
from .contract import add_trial, objectives_distribution, run_dir
from .pictures import assert_picture

pytestmark = pytest.mark.slow


def build(root: Path, *args: str, **env: str):
    return CliRunner().invoke(app, ["report", "build", *args], env={"WORKBENCH_SWEEPS": str(root), **env})


def from_run_records(root: Path) -> pd.DataFrame:
    """Each finished run's final metric, read straight from its folder, not through workbench.analysis."""
    rows = []
    for path in sorted((sweep_folder(SWEEP, root) / "trials").glob("*/seed-*")):
        record = load_run(path)
        if record.summary["status"] == "finished":
            rows.append({"objective": record.config["objective"], "seed": record.summary["seed"],
                         "final": record.summary["eval"]["eval/p_correct"],  # the default metric: exact
                         "accuracy": record.summary["eval"]["eval/accuracy"], "run": str(path)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(sweep_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / SWEEP
    result = build(sweep_root, SWEEP, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_every_figure_exists_and_shows_something(report):
    markdown = (report / "report.md").read_text()
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert {"learning_curves.png", "entropy_curves.png", "shift_curves.png", "gradient_weights.png",
            "geometry.png"} <= set(linked)
    for name in linked:
        assert_picture(report / name)
    assert sorted(p.name for p in report.glob("*.png")) == sorted(linked)
    # Axes this sweep did not vary are named, with the reason, instead of drawn.
    assert "Not drawn: δ was not swept" in markdown
    assert "Not drawn: neither the rollout nor the train precision was swept" in markdown
    # A grid ran every setting once: a search history or importances would show seed noise as structure.
    assert "Not drawn: the sweep's sampler is grid: every setting ran once" in markdown


def test_seeds_csv_has_one_row_per_arm_and_seed_with_its_run(report, sweep_root):
    records = from_run_records(sweep_root).set_index(["objective", "seed"])
    seeds = pd.read_csv(report / "seeds.csv").set_index(["objective", "seed"])
    assert sorted(seeds.index) == sorted(records.index)
    folder = sweep_folder(SWEEP, sweep_root)
    for key, row in seeds.iterrows():
        assert row["metric"] == "eval/p_correct" and row["final"] == records.loc[key, "final"]
        assert row["final eval/accuracy"] == records.loc[key, "accuracy"]
        assert str(folder / row["run"]) == records.loc[key, "run"]
        assert row["machine threads"] >= 1 and isinstance(row["machine cpu_capability"], str)
    # Every arm ran the same seeds, so each difference from the baseline is paired.
    results = pd.read_csv(report / "results.csv")
    assert set(results["test"].dropna()) <= {"paired t"} and set(results["verdict"].dropna()) <= {
        "better", "worse", "matches", "not resolved"}


def test_table_numbers_equal_the_run_records(report, sweep_root):
    records = from_run_records(sweep_root)
    assert len(records) == 6
    results = pd.read_csv(report / "results.csv").set_index("objective")
    markdown = (report / "report.md").read_text()
    for objective, group in records.groupby("objective"):
        finals = group["final"].to_numpy()
        row = results.loc[objective]
        assert row["seeds"] == 3
        assert row["mean"] == pytest.approx(finals.mean(), abs=1e-12)
        assert row["iqm"] == pytest.approx(scipy_stats.trim_mean(finals, 0.25), abs=1e-12)
        results_part = markdown.split("## Results")[1]
        table_row = next(line for line in results_part.splitlines() if line.startswith(f"| {objective} |"))
        if np.ptp(finals) > 0:  # a 4-step run often scores the same on every seed: then no interval is given
            low, high = scipy_stats.ttest_1samp(finals, 0).confidence_interval()
            assert (row["mean_low"], row["mean_high"]) == pytest.approx((low, high), abs=1e-12)
            assert f"| 3 | {finals.mean():.3f} [{low:.3f}, {high:.3f}]" in table_row
        else:
            assert np.isnan(row["mean_low"]) and np.isnan(row["mean_high"])
            assert f"| 3 | {finals.mean():.3f} (no interval: every seed scored the same)" in table_row
    assert set(results.index) == {"grpo", "drpo"}
    drpo, grpo = (records[records.objective == o]["final"].to_numpy() for o in ("drpo", "grpo"))
    assert results.loc["drpo", "diff"] == pytest.approx(drpo.mean() - grpo.mean(), abs=1e-12)


def test_summary_states_the_comparison_in_words(report):
    summary = (report / "report.md").read_text().split("## Results")[0]
    assert "3 seeds" in summary and "No run was flagged (6 runs" in summary
    assert "Against the baseline **grpo**" in summary and "named by the default" in summary
    assert re.search(r"drpo \*\*(better|worse|matches|not resolved)\*\*", summary)
    assert "## What was measured" in summary and "`eval/p_correct` is the probability" in summary
    assert "95% CI" in summary or "no interval: every seed scored the same" in summary
    assert "Fewer than 5 seeds: " in summary and "drpo (3)" in summary and "grpo (3)" in summary
    assert "### Token regime" in (report / "report.md").read_text()


def test_html_is_self_contained(report):
    html = (report / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == len(list(report.glob("*.png")))
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


def test_building_twice_gives_identical_files(report, sweep_root, tmp_path):
    again = tmp_path / "again"
    assert build(sweep_root, SWEEP, "--out", str(again)).exit_code == 0
    first = {p.name: p.read_bytes() for p in report.iterdir()}
    second = {p.name: p.read_bytes() for p in again.iterdir()}
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_running_sweep_with_a_failed_trial(sweep_root, tmp_path):
    """A copy of the sweep with one trial failed and one still running, its run half written."""
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    study = open_study(SWEEP, root)
    distributions = objectives_distribution(["grpo", "drpo"])
    add_trial(root, study, "drpo", [0], distributions, state=_state("FAIL"), failure="RuntimeError: out of memory")
    config = load_run(next((sweep_folder(SWEEP, root) / "trials").glob("*/seed-0"))).config
    recorder = RunRecorder(run_dir(root, study, 5), {**config, "seed": 5})
    recorder.log_scalars(0, {"eval/accuracy": 0.5})
    add_trial(root, study, "grpo", [5], distributions, state=_state("RUNNING"))

    out = tmp_path / "report"
    result = build(root, SWEEP, "--out", str(out))
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    assert "The sweep is still running (2 complete, 1 running, 0 queued)" in markdown
    assert "uses the 6 runs finished so far" in markdown
    assert "1 trial(s) failed (trial 2: RuntimeError: out of memory)" in markdown
    assert "Flagged runs, 1 of 7 (1 running): trials/3/seed-5 (grpo, seed 5): running." in markdown
    # The unfinished run changes no number.
    results = pd.read_csv(out / "results.csv").set_index("objective")
    assert results["seeds"].to_dict() == {"grpo": 3, "drpo": 3}


def _state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]


def test_unknown_sweep_is_one_line_exit_2_and_creates_nothing(sweep_root, tmp_path):
    out = tmp_path / "reports" / "nope"
    result = build(sweep_root, "nope", "--out", str(out))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such sweep" in lines[0] and f"existing: {SWEEP}" in lines[0]
    assert not out.parent.exists()


def test_unknown_baseline_lists_the_arms(sweep_root, tmp_path):
    result = build(sweep_root, SWEEP, "--out", str(tmp_path / "r"), "--baseline", "spo")
    assert result.exit_code == 2 and "arms: drpo; grpo" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_wandb_offline_says_it_skips_and_why(sweep_root, tmp_path):
    result = build(sweep_root, SWEEP, "--out", str(tmp_path / "r"), "--wandb", WANDB_MODE="offline")
    assert result.exit_code == 0, result.output
    assert "W&B report: skipped, WANDB_MODE=offline" in " ".join(result.output.split())
    assert (tmp_path / "r" / "report.html").is_file()


def test_baseline_choice_changes_the_comparison(report, sweep_root, tmp_path):
    result = build(sweep_root, SWEEP, "--out", str(tmp_path / "r"), "--baseline", "drpo")
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "r" / "results.csv").set_index("objective")
    assert np.isnan(results.loc["drpo", "diff"]) and not np.isnan(results.loc["grpo", "diff"])
