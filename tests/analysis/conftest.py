"""A real small sweep, launched once per session through `workbench sweep launch`: 2 objectives × 3 seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runs import TINY

SWEEP = "tiny_report"


def launch_env(root: Path) -> dict[str, str]:
    return {**os.environ, "WORKBENCH_SWEEPS": str(root), "TRL_EXPERIMENTAL_SILENCE": "1"}


@pytest.fixture(scope="session")
def sweep_root(tmp_path_factory) -> Path:
    """The sweeps root holding SWEEP, run by the real launcher (real TRL runs, real Optuna journal)."""
    folder = tmp_path_factory.mktemp("sweeps")
    spec = {"name": SWEEP, "base": {**TINY, "max_steps": 4, "eval_prompts": 16, "tracking": {
        **TINY["tracking"], "wandb_mode": "disabled"}}, "objectives": ["grpo", "drpo"], "seeds": [0, 1, 2],
        "sampler": "grid", "workers": 1}
    path = folder / f"{SWEEP}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    root = folder / "runs"
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", "launch", str(path)], cwd=folder,
                          env=launch_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return root
