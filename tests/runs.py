"""Tiny real training runs shared by the tests: the built-in task and policy, a handful of steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.runner import RunResult, prepare_run, train

TINY: dict[str, Any] = {
    "task": "arithmetic",  # the character task: the cheapest real run (the default task has a 513-token vocabulary)
    "max_steps": 2,
    "prompts_per_step": 2,
    "num_generations": 4,
    "max_completion_length": 4,
    "eval_every": 2,
    "eval_prompts": 8,
    "eval_samples": 1,
    "rollout_precision": "bf16",
    "learning_rate": 2e-3,
    "tracking": {"histogram_every": 1, "wandb_mode": "disabled"},
}


def tiny_config(output_dir: Path, **fields: Any) -> RunConfig:
    data = {**TINY, "output_dir": str(output_dir), **fields}
    data["tracking"] = {**TINY["tracking"], **fields.get("tracking", {})}
    return RunConfig.parse(data)


def tiny_run(output_dir: Path, **fields: Any) -> RunResult:
    return train(prepare_run(tiny_config(output_dir, **fields)))
