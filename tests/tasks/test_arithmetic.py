"""The built-in arithmetic task: its fixed held-out split, its exact reward, its teacher; bad task names and params."""

from __future__ import annotations

import random

import pytest

from workbench.config import ConfigError
from workbench.tasks import get_task


def test_arithmetic_split_is_disjoint_fixed_and_rewarded_exactly():
    task = get_task("arithmetic")
    held_out = {p for p, _ in task.eval_split()}
    train = task.train_dataset(seed=0)
    assert not held_out & set(train["prompt"])
    assert len(held_out) + len(train) == 20 * 20
    assert get_task("arithmetic").eval_split() == task.eval_split()
    assert train["prompt"] != task.train_dataset(seed=1)["prompt"]  # the seed orders the data
    assert task.reward(["19", "19 ", "18", "191"], ["19"] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_the_teacher_is_right_about_as_often_as_asked():
    task = get_task("arithmetic", teacher_accuracy=0.4)
    rng = random.Random(0)
    right = 0
    for _ in range(2000):
        prompt, completion = task.teacher(rng)
        a, b = map(int, prompt.rstrip("=").split("+"))
        right += completion == str(a + b)
        assert abs(int(completion) - (a + b)) <= 2
    assert 0.37 < right / 2000 < 0.45


def test_unknown_tasks_and_bad_task_params_name_the_field():
    with pytest.raises(ConfigError, match="task: unknown task 'nope'.*arithmetic"):
        get_task("nope")
    with pytest.raises(ConfigError, match="task_params.*max_operand"):
        get_task("arithmetic", max_operand=1)
    with pytest.raises(ConfigError, match="task: cannot load"):
        get_task("no_such_module:factory")
