"""`workbench run` through the real CLI: a run, and bad input that leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.launch


def workbench(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def write_config(path: Path, **fields) -> Path:
    base = {"max_steps": 2, "prompts_per_step": 2, "num_generations": 4, "eval_every": 2, "eval_prompts": 8,
            "eval_samples": 1, "output_dir": str(path.parent / "runs"), "tracking": {"wandb_mode": "offline"}}
    path.write_text(yaml.safe_dump({**base, **fields}))
    return path


@pytest.mark.slow
def test_run_prints_where_the_record_is(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", objective="drpo")
    # A wide console: at rich's default 80 columns a long tmp path (pytest-xdist adds popen-gwN/) folds mid-name.
    proc = workbench("run", str(cfg), "--set", "objective_params.delta=0.3", "--set", "name=drpo-test",
                     cwd=tmp_path, COLUMNS="400")
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "drpo-test"
    assert f"run record: {run_dir}" in " ".join(proc.stdout.split())
    assert (run_dir / "summary.json").exists()
    assert yaml.safe_load((run_dir / "config.json").read_text())["objective_params"] == {"delta": 0.3}


@pytest.mark.parametrize(
    "fields, overrides, needle",
    [
        ({"objective": "nope"}, [], "objective"),
        ({"task": "nope"}, [], "task"),
        ({"colour": "red"}, [], "colour"),
        ({"learning_rate": -1.0}, [], "learning_rate"),
        ({"num_generations": 1}, [], "num_generations"),
        ({"model": "./no/such/model"}, [], "model"),
        ({"objective": "drpo", "objective_params": {"delta": 0}}, [], "delta"),
        ({}, ["seed=-3"], "seed"),
        ({}, ["tracking.nope=1"], "nope"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_folder(tmp_path, fields, overrides, needle):
    cfg = write_config(tmp_path / "run.yaml", **fields)
    args = [a for o in overrides for a in ("--set", o)]
    proc = workbench("run", str(cfg), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_and_malformed_config_files(tmp_path):
    proc = workbench("run", str(tmp_path / "absent.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "absent.yaml" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: [grpo\n")
    proc = workbench("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr and "line" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_records_the_run_as_interrupted_and_exits_130(tmp_path):
    import json
    import signal
    import time

    cfg = write_config(tmp_path / "run.yaml", max_steps=10_000, eval_every=10_000,
                       tracking={"wandb_mode": "disabled"})
    run_dir = tmp_path / "runs" / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "run", str(cfg), "--set", "name=stopped"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # The first training step logged (step 0 is the base evaluation).
        while not any(json.loads(line)["step"] >= 1 for line in _lines(run_dir / "scalars.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert stderr.strip().splitlines()[-1] == f"interrupted: run record {run_dir}"


def _lines(path: Path) -> list[str]:
    """The complete lines of a file being appended to."""
    return [line for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []
