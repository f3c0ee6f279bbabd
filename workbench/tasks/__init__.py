"""Reward tasks (built-in ``noisy_arithmetic``, ``arithmetic``, ``dataset``; plugins by import path) and held-out
evaluation."""

from __future__ import annotations

from . import arithmetic, dataset, noisy  # noqa: F401  (register the built-in tasks)
from .base import Task, available_tasks, get_task, register_task
from .dataset import describe_task
from .evaluate import evaluate

__all__ = ["Task", "available_tasks", "describe_task", "evaluate", "get_task", "register_task"]
