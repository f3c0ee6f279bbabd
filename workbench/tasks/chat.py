"""Chat models get chat prompts: a task's prompt becomes one user message when the tokenizer has a chat template.

This is TRL's conversational format: a dataset prompt is a list of ``{role, content}`` messages. TRL
1.16 hands such prompts to ``rollout_func`` untouched (templating happens at the sampler, in
``rollout.generate``, with the generation prompt added) and hands each completion to the reward
functions as ``[{"role": "assistant", "content": text}]``.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from .base import Task

Messages = list[dict[str, str]]


def has_chat_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def use_chat(task: Task, tokenizer: Any) -> None:
    """Switch ``task`` to chat prompts (and its chat scoring) when the policy's tokenizer has a template."""
    task.chat = has_chat_template(tokenizer)


def as_prompt(task: Task, prompt: str) -> str | Messages:
    """The prompt as the policy receives it: a user message for a chat task, the raw text otherwise.

    A task's ``system`` prompt (an optional attribute, the dataset task's) comes first: a system message for a
    chat task, the text and a blank line otherwise.
    """
    text = getattr(task, "system", None)
    if not task.chat:
        return f"{text}\n\n{prompt}" if text else prompt
    system = [{"role": "system", "content": text}] if text else []
    return [*system, {"role": "user", "content": prompt}]


def chat_dataset(task: Task, dataset: Dataset) -> Dataset:
    """The task's training dataset with its ``prompt`` column in the conversational format when chatting."""
    if not task.chat:
        return dataset
    # Rebuilt as a column rather than by Dataset.map, which draws a progress bar into every run's output.
    return dataset.remove_columns("prompt").add_column("prompt", [as_prompt(task, p) for p in dataset["prompt"]])
