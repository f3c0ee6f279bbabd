"""Chat tasks: the arithmetic task's chat scoring, and prompts worded by its question template as user messages."""

from __future__ import annotations

import pytest

from workbench.config import ConfigError
from workbench.tasks import get_task
from workbench.tasks.arithmetic import extract_answer
from workbench.tasks.chat import chat_dataset


def chat_task(**params):
    task = get_task("arithmetic", **params)
    task.chat = True
    return task


@pytest.mark.parametrize("text, number", [
    ("24 + 48 = 72", "72"), ("72", "72"), (" 72.", "72"), ("The answer is 72", "72"), ("24 + 48 = 72 = 72", "72"),
    ("24 + 48 = ? It is 072", "72"), ("24 plus 48 is 72", "24"), ("no idea", None), ("24 + 48 =", "24"),
])
def test_extract_answer_takes_the_number_after_the_last_equals_sign_else_the_first(text, number):
    assert extract_answer(text) == number


def test_chat_scoring_counts_a_restated_sum_and_plain_scoring_stays_exact():
    chat, plain = chat_task(), get_task("arithmetic")
    assert chat.score("24 + 48 = 72", "72") == 1.0
    assert chat.score("24 + 48 = 71", "72") == 0.0
    assert plain.score("24 + 48 = 72", "72") == 0.0
    assert plain.score("72", "72") == 1.0
    # TRL hands a conversational completion as a list of messages.
    assert chat.reward([[{"role": "assistant", "content": "24 + 48 = 72"}], "71"], ["72", "72"]) == [1.0, 0.0]


def test_chat_prompts_are_user_messages_worded_by_the_question_template():
    task = chat_task(question="What is {a} + {b}?")
    rows = chat_dataset(task, task.train_dataset(seed=0))
    prompt, answer = rows[0]["prompt"], rows[0]["answer"]
    assert len(prompt) == 1 and prompt[0]["role"] == "user"
    a, b = (int(x) for x in prompt[0]["content"].removeprefix("What is ").removesuffix("?").split(" + "))
    assert str(a + b) == answer
    plain = get_task("arithmetic")
    assert chat_dataset(plain, plain.train_dataset(seed=0))[0]["prompt"].endswith("=")


def test_a_question_template_with_other_fields_is_refused():
    with pytest.raises(ConfigError, match="question"):
        get_task("arithmetic", question="What is {x}?")
