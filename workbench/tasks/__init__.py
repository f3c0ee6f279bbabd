"""Reward tasks (built-in ``arithmetic``, plugins by import path), held-out evaluation and the policies trained on them."""

from __future__ import annotations

from . import arithmetic  # noqa: F401  (registers the built-in task)
from .base import Task, available_tasks, get_task, register_task
from .evaluate import evaluate
from .policy import char_tokenizer, load_policy, tiny_policy_folder

__all__ = ["Task", "available_tasks", "char_tokenizer", "evaluate", "get_task", "load_policy", "register_task",
           "tiny_policy_folder"]
