"""`workbench run` under torchrun and accelerate launch: 2 CPU processes (DDP over gloo), one run record.

Every step logged once, one W&B run, the progress bar and the record's path printed once, the held-out
evaluation present and equal to what one process measures; a rank that dies fails the run on the record.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from runs import TINY
from wandb_files import history, run_file
from workbench.config import RunConfig
from workbench.runner import prepare_run, run_eval
from workbench.tracking import load_run

pytestmark = pytest.mark.launch

VENV_BIN = Path(sys.executable).parent
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, **fields) -> Path:
    data = {**TINY, "max_steps": STEPS, "output_dir": str(folder / "runs"), "name": "ddp",
            "tracking": {"histogram_every": 1, "wandb_mode": "offline"}, **fields}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def launch(command: list[str], folder: Path) -> subprocess.Popen:
    # COLUMNS: at rich's default 80 a long tmp path (pytest-xdist adds popen-gwN/) folds mid-name.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "COLUMNS": "400"}
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()  # no-op once it exited; a hang must not outlive the test


TORCHRUN = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "workbench", "run"]


def accelerate_command(port: int) -> list[str]:
    # --multi_gpu selects accelerate's torch.distributed launcher; with no GPU the processes train on the CPU
    # over gloo. (--cpu would take accelerate's single-process or mpirun path.)
    return [str(VENV_BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
            "-m", "workbench", "run"]


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_write_one_run_record(tmp_path, launcher):
    cfg = write_config(tmp_path)
    command = TORCHRUN if launcher == "torchrun" else accelerate_command(free_port())
    out, err = finish(launch([*command, str(cfg)], tmp_path))
    run_dir = tmp_path / "runs" / "ddp"
    assert (run_dir / "summary.json").exists(), err[-3000:]
    record = load_run(run_dir)
    assert record.summary["status"] == "finished", record.summary.get("failure")
    steps = [row["step"] for row in record.scalars]
    assert steps == list(range(STEPS + 1)), steps  # step 0: the base evaluation; every training step once
    assert {"tv/mean", "behaviour/median_prob", "grad_norm"} <= set(record.scalars[1])
    assert record.scalars[-1]["eval/accuracy"] == record.summary["eval"]["eval/accuracy"]
    assert sorted({h["step"] for h in record.histograms}) == list(range(1, STEPS + 1))
    # One W&B run holding every step once (run_file asserts there is exactly one).
    logged = [row["_step"] for row in history(run_file(run_dir)) if "tv/mean" in row]
    assert logged == list(range(1, STEPS + 1))
    # Printed by the main process only.
    assert " ".join(out.split()).count(f"run record: {run_dir}") == 1, out
    assert out.count(f"grpo seed 0") == 1, out
    # The held-out evaluation ran once, on the main process: one process measures the same on the same weights.
    prepared = prepare_run(RunConfig.from_yaml(cfg, ["name=reference"]))
    assert record.summary["base_eval"] == run_eval(prepared, prepared.model, seed=prepared.config.seed)
    assert record.summary["base_eval"]["eval/accuracy"] == record.scalars[0]["eval/accuracy"]


def test_a_rank_that_dies_fails_the_run_on_the_record(tmp_path):
    cfg = write_config(tmp_path, max_steps=500, eval_every=500)
    proc = launch([*TORCHRUN, str(cfg)], tmp_path)
    scalars = tmp_path / "runs" / "ddp" / "scalars.jsonl"
    try:
        deadline = time.monotonic() + 480
        while not (scalars.exists() and len(scalars.read_text().splitlines()) >= 3):  # training is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.5)
        rank1 = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK") == "1"]
        assert len(rank1) == 1
        rank1[0].send_signal(signal.SIGKILL)  # as the OOM killer would
        _, err = proc.communicate(timeout=180)  # the launch ends instead of hanging
    finally:
        proc.kill()
    assert proc.returncode != 0
    summary = load_run(tmp_path / "runs" / "ddp").summary
    assert summary["status"] == "failed", summary
    assert summary["failure"], summary
    assert len(load_run(tmp_path / "runs" / "ddp").scalars) < 500


def test_bad_input_fails_on_every_rank_before_anything_is_created(tmp_path):
    cfg = write_config(tmp_path, objective="nope")
    _, err = finish(launch([*TORCHRUN, str(cfg)], tmp_path))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("objective" in line for line in errors), err[-3000:]  # one line per rank
    assert not (tmp_path / "runs").exists()
