"""Reward tasks (built-in ``noisy_arithmetic``, ``arithmetic``; plugins by import path), held-out evaluation, policies."""

from __future__ import annotations

from . import arithmetic, noisy  # noqa: F401  (register the built-in tasks)
from .base import Task, available_tasks, get_task, register_task
from .evaluate import evaluate
from .policy import char_tokenizer, load_policy, tiny_policy_folder

__all__ = ["Task", "available_tasks", "char_tokenizer", "evaluate", "get_task", "load_policy", "register_task",
           "tiny_policy_folder"]
