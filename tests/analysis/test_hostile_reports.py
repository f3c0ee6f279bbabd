"""`report build` against a hostile user (issue 21): an --out that is not a report is never deleted, valid JSON of the
wrong shape in a run folder flags that run instead of aborting the report, the flagged-runs sentence never shows an
empty parenthesis, and the archive that --force-new keeps is readable by `sweep status` and `report build`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweeps.spec import SweepSpec
from workbench.sweeps.store import read_meta, sweep_folder
from workbench.sweeps.study import prepare

from .conftest import SWEEP

pytestmark = pytest.mark.slow


def cli(root: Path, *args: str):
    return CliRunner().invoke(app, list(args), env={"WORKBENCH_SWEEPS": str(root)})


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


# ---- item 1: --out replaces a previous report only -------------------------------------------------------------


def test_out_holding_a_users_files_or_a_file_is_refused_and_kept(sweep_root, tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("my notes")
    (project / "src" / "main.py").write_text("print(1)")
    line = one_line_error(cli(sweep_root, "report", "build", SWEEP, "--out", str(project)))
    assert str(project) in line and "notes.txt" in line and "not a report" in line
    assert (project / "notes.txt").read_text() == "my notes" and (project / "src" / "main.py").is_file()

    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    line = one_line_error(cli(sweep_root, "report", "build", SWEEP, "--out", str(plain)))
    assert str(plain) in line and plain.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "project"]  # no staging folder left

    line = one_line_error(cli(sweep_root, "report", "build", SWEEP, "--out", "/proc/workbench-report"))
    assert "/proc/workbench-report" in line


def test_a_previous_report_is_replaced(sweep_root, tmp_path):
    out = tmp_path / "report"
    assert cli(sweep_root, "report", "build", SWEEP, "--out", str(out)).exit_code == 0
    (out / "report.md").write_text("stale")
    result = cli(sweep_root, "report", "build", SWEEP, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "report.md").read_text().startswith("# Sweep")


# ---- item 5: valid JSON of the wrong shape ----------------------------------------------------------------------


def _append(name: str, line: str):
    def damage(run: Path) -> None:
        with open(run / name, "a") as f:
            f.write(line + "\n")
    return damage


def _edit_json(name: str, change):
    def damage(run: Path) -> None:
        path = run / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


def _edit_first_line(name: str, change):
    def damage(run: Path) -> None:
        path = run / name
        lines = path.read_text().splitlines()
        lines[0] = json.dumps(change(json.loads(lines[0])))
        path.write_text("\n".join(lines) + "\n")
    return damage


WRONG_SHAPE = {  # name: (damage, what the flag names)
    "scalars null line": (_append("scalars.jsonl", "null"), "scalars.jsonl line"),
    "scalars list line": (_append("scalars.jsonl", "[1, 2, 3]"), "scalars.jsonl line"),
    "summary is a list": (_edit_json("summary.json", lambda s: [s]), "summary.json is a list"),
    "config is []": (_edit_json("config.json", lambda c: []), "config.json is a list"),
    "step is a string": (_edit_first_line("scalars.jsonl", lambda r: {**r, "step": "zero"}),
                         "scalars.jsonl line 1: step is 'zero'"),
    "eval accuracy is a string": (_edit_json("summary.json", lambda s: {**s, "eval": {"eval/accuracy": "high"}}),
                                  "summary.json: eval.eval/accuracy is 'high'"),
    "histogram edges": (_edit_first_line("histograms.jsonl", lambda r: {**r, "edges": list(reversed(r["edges"]))}),
                        "histograms.jsonl line 1: edges"),
    "binary scalars": (lambda run: (run / "scalars.jsonl").write_bytes(b"\xff\xfe\x00garbage\n"), "not UTF-8"),
}


def runs_by_objective(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for run in sorted((sweep_folder(SWEEP, root) / "trials").glob("*/seed-*")):
        found.setdefault(json.loads((run / "config.json").read_text())["objective"], []).append(run)
    return found


@pytest.mark.parametrize("cases", [list(WRONG_SHAPE)[i:i + 2] for i in range(0, len(WRONG_SHAPE), 2)],
                         ids=lambda cases: " + ".join(cases))
def test_wrong_shaped_run_files_flag_their_run_and_the_report_is_built(sweep_root, tmp_path, cases):
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    by_objective = runs_by_objective(root)
    damaged = {}
    for case, run in zip(cases, (by_objective["grpo"][1], by_objective["drpo"][2])):
        WRONG_SHAPE[case][0](run)
        damaged[case] = str(run.relative_to(sweep_folder(SWEEP, root)))
    out = tmp_path / "report"
    result = cli(root, "report", "build", SWEEP, "--out", str(out))
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    markdown = (out / "report.md").read_text()
    flagged = markdown.split("Flagged runs, ", 1)[1].split("\n")[0]
    assert flagged.startswith("2 of 6 (2 unreadable): ")
    for case, run in damaged.items():
        assert f"{run} (" in flagged and WRONG_SHAPE[case][1] in flagged, (case, flagged)


# ---- item 8: no empty parenthesis ------------------------------------------------------------------------------


def test_a_finished_run_with_a_damaged_record_is_counted_in_words(sweep_root, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    run = runs_by_objective(root)["drpo"][0]
    scalars = run / "scalars.jsonl"
    scalars.write_bytes(scalars.read_bytes()[:-7])  # a cut last line: the run still counts, and is flagged
    out = tmp_path / "report"
    assert cli(root, "report", "build", SWEEP, "--out", str(out)).exit_code == 0
    flagged = (out / "report.md").read_text().split("Flagged runs, ", 1)[1].split("\n")[0]
    assert "()" not in flagged and flagged.startswith("1 of 6 (1 finished with a damaged record): ")


# ---- item 7: the archive --force-new keeps is readable -------------------------------------------------------------


def test_the_archive_of_force_new_is_readable(sweep_root, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(sweep_root, root)
    spec = SweepSpec.model_validate(read_meta(SWEEP, root)["spec"])
    prepare(spec, sweep_folder(SWEEP, root), None, force_new=True)
    archives = [p.name for p in root.iterdir() if p.name.startswith(f"{SWEEP}.old-")]
    assert len(archives) == 1
    status = cli(root, "sweep", "status", archives[0])
    assert status.exit_code == 0 and "2 complete" in status.output, status.output
    out = tmp_path / "archived-report"
    report = cli(root, "report", "build", archives[0], "--out", str(out))
    assert report.exit_code == 0, report.output
    assert "6 runs, 6 finished" in (out / "report.md").read_text()
