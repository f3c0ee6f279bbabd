"""Tiny sweep files for the tests: the built-in task and policy, a couple of steps per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from runs import TINY


def tiny_sweep(name: str, **fields: Any) -> dict[str, Any]:
    """A grid sweep over grpo and drpo (two δ), one seed, runs of TINY size."""
    return {"name": name, "base": {**TINY, "tracking": {"wandb_mode": "disabled"}},
            "objectives": ["grpo", "drpo"], "objective_space": {"drpo": {"delta": {"values": [0.1, 0.3]}}},
            "seeds": [0], **fields}


def write_sweep(folder: Path, name: str, **fields: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(name, **fields), sort_keys=False))
    return path
