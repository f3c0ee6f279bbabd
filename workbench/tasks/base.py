"""What a reward task is, and how a name in a RunConfig becomes one (built-in or import path)."""

from __future__ import annotations

import importlib
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Callable

from datasets import Dataset

from ..config import ConfigError


class Task(ABC):
    """A reward task: prompts with reference answers, an exact reward and a held-out split.

    ``train_dataset`` feeds TRL (columns ``prompt`` and ``answer``; TRL hands ``answer`` to
    :meth:`reward`), ``eval_split`` is never trained on. A task that can teach the built-in tiny
    policy also implements :meth:`teacher` and lists its characters in ``alphabet`` (and any
    whole-word tokens in ``words``).
    """

    name: str = "task"
    alphabet: str = ""
    words: tuple[str, ...] = ()
    # Overrides of the tiny policy's warm-start settings (models.load.WARM_START) this task needs.
    warm_start: Mapping[str, float] = {}
    # Set by the runner when the policy's tokenizer has a chat template (tasks/chat.py): prompts then go to the
    # model as a user message, and a task may word and score them for a chat model.
    chat: bool = False

    @abstractmethod
    def train_dataset(self, seed: int) -> Dataset:
        """The training prompts, shuffled by ``seed``: columns ``prompt`` and ``answer``."""

    @abstractmethod
    def eval_split(self) -> list[tuple[str, str]]:
        """Held-out (prompt, answer) pairs, the same for every seed."""

    @abstractmethod
    def score(self, completion: str, answer: str) -> float:
        """Reward of one completion."""

    def reachable(self, text: str, answer: str) -> bool | None:
        """Whether the completion ``text`` is rewarded or can still become so by going on: the optional hook that
        lets the evaluation enumerate every rewarded completion and log ``eval/p_correct`` exactly.

        A task overrides it only when its reward is 1 on the completions this describes and 0 on every other
        (``score`` decides a whole completion, this decides its prefixes). None, the default, says the task cannot
        enumerate them (a chat model scored by the integer its answer gives): sampled accuracy is then the metric.
        """
        return None

    def teacher(self, rng: random.Random) -> tuple[str, str]:
        """A (prompt, completion) pair from the task's teacher, for the tiny policy's warm start."""
        raise ConfigError(f"task {self.name!r} has no teacher to warm-start model 'tiny' with; "
                          "give model a hub id or a local folder")

    def reward(self, completions: list[str], answer: list[str], **_: Any) -> list[float]:
        """TRL reward function: one float per completion (text, or TRL's conversational [{role, content}])."""
        return [self.score(c if isinstance(c, str) else c[-1]["content"], a) for c, a in zip(completions, answer)]


_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Register a task factory under ``name``; a name already taken is refused."""

    def decorator(factory: Callable[..., Task]) -> Callable[..., Task]:
        if name in _TASKS:
            raise ValueError(f"task {name!r} is already registered")
        _TASKS[name] = factory
        return factory

    return decorator


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, /, **params: Any) -> Task:
    """The built-in task ``name`` or the factory at ``"pkg.module:factory"``, called with ``params``.

    ``name`` is positional-only: a task may take a parameter called ``name`` (the dataset task's hub config).
    """
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"task: cannot load {name!r} ({err})") from None
    elif name in _TASKS:
        factory = _TASKS[name]
    else:
        raise ConfigError(f"task: unknown task {name!r}; expected one of {', '.join(available_tasks())} "
                          "or an import path 'package.module:factory'")
    try:
        task = factory(**params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"task_params for {name!r}: {err}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task: {name!r} returned {type(task).__name__}, expected a workbench.tasks.Task")
    return task
