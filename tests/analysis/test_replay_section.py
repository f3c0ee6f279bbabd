"""The report's "The same batches, every objective" section: present when a sweep's runs kept batches, absent else;
replayed once, then read from the summary it saved until a kept batch changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import yaml
from runs import TINY

import workbench.replay
from workbench.analysis.load import load_sweep
from workbench.analysis.replay_section import replay_blocks
from workbench.analysis.report import build_report

from .conftest import launch_env

SWEEP = "tiny_replay"


def test_report_section_from_kept_batches(tmp_path, monkeypatch):
    spec = {"name": SWEEP, "base": {**TINY, "max_steps": 2, "num_iterations": 2, "eval_prompts": 8, "tracking": {
        **TINY["tracking"], "wandb_mode": "disabled", "keep_batches_every": 1}}, "objectives": ["grpo", "dppo_tv"],
        "seeds": [0], "sampler": "grid", "workers": 1}
    path = tmp_path / f"{SWEEP}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    root = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", "launch", str(path)], cwd=tmp_path,
                          env=launch_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    built = build_report(SWEEP, tmp_path / "report", root=root)
    section = _section(built.folder)
    assert "2 run(s) kept their batches" in section and "mean over 4 kept step(s) of 2 run(s)" in section
    header = next(line for line in section.splitlines() if line.startswith("|  | pg |"))
    assert header.split("|")[2:5] == [" pg ", " dppo_tv ", " grpo "]
    assert "<h2>The same batches, every objective</h2>" in (built.folder / "report.html").read_text()

    # The second build reads the summary the first saved in the sweep's folder: no replay, the same section.
    replayed = []
    replay_run = workbench.replay.replay_run

    def counted(run, *args, **kwargs):
        replayed.append(run)
        return replay_run(run, *args, **kwargs)

    monkeypatch.setattr(workbench.replay, "replay_run", counted)
    again = build_report(SWEEP, tmp_path / "again", root=root)
    assert replayed == [] and _section(again.folder) == section
    # A kept batch touched since: that summary is stale, the regime is replayed (both of its runs) and saved again.
    batch = next(root.glob("**/batches/step-*/batch-0.safetensors"))
    os.utime(batch, ns=(batch.stat().st_atime_ns, batch.stat().st_mtime_ns + 1_000_000_000))
    touched = build_report(SWEEP, tmp_path / "touched", root=root)
    assert len(replayed) == 2 and _section(touched.folder) == section
    build_report(SWEEP, tmp_path / "after", root=root)
    assert len(replayed) == 2

    for batches in root.glob("**/batches"):
        shutil.rmtree(batches)
    assert replay_blocks(load_sweep(SWEEP, root)) == []


def _section(folder):
    text = (folder / "report.md").read_text()
    return text[text.index("## The same batches, every objective"):]
