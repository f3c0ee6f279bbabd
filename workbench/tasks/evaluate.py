"""Held-out accuracy: the mean reward of k samples per prompt at the training temperature, and greedy."""

from __future__ import annotations

from typing import Any

import torch

from ..rollout import generate
from .base import Task
from .chat import as_prompt


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer: Any, task: Task, n_prompts: int, k: int, temperature: float,
             max_new_tokens: int, seed: int) -> dict[str, float]:
    """``eval/accuracy`` (sampled, mean over k) and ``eval/greedy_accuracy`` on the first n held-out prompts.

    A chat task's prompts go to the model as user messages, through its chat template (as in training).

    Sampling runs in a forked random stream, so evaluating never changes what training samples next.
    """
    pairs = task.eval_split()[:n_prompts]
    prompts = [as_prompt(task, p) for p, _ in pairs]
    answers = [a for _, a in pairs]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sampled = generate(model, tokenizer, [p for p in prompts for _ in range(k)], max_new_tokens, temperature)
        greedy = generate(model, tokenizer, prompts, max_new_tokens, temperature=None)
    return {
        "eval/accuracy": _mean(task.reward(sampled.texts, [a for a in answers for _ in range(k)])),
        "eval/greedy_accuracy": _mean(task.reward(greedy.texts, answers)),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)
