"""The built-in task: small additions, exact-match reward, a fixed held-out split.

    prompt "12+7="   answer "19"   reward 1 if the completion is exactly the answer, else 0

The teacher that warm-starts the tiny policy is deliberately imperfect: right with probability
``teacher_accuracy``, a near miss (answer ± 1 or 2) otherwise. The policy then knows the answer
without preferring it, the regime in which RL sharpens (sparse exact rewards on a policy that
rarely samples the answer gave no signal in our measurements).

A chat model (the policy's tokenizer has a chat template, ``Task.chat``) gets the pair as a question,
``question`` formatted with a and b and sent as a user message, and is scored by the integer its
answer gives (:func:`extract_answer`): the first integer after the last "=" when there is one, so a
restated sum "24 + 48 = 72" counts for 72, else the first integer ("72.", "The answer is 72").
An answer that opens by restating the operands in words ("24 plus 48 is 72") counts for 24: the
question asks for the number alone, and that is what RL teaches.
"""

from __future__ import annotations

import random
import re

from datasets import Dataset

from .base import Task, register_task

# The held-out split is fixed for every run and seed, so accuracies compare across a sweep.
SPLIT_SEED = 1234
NEAR_MISSES = (-2, -1, 1, 2)
INTEGER = re.compile(r"\d+")
CHAT_QUESTION = "What is {a} + {b}? Reply with just the number."  # measured best of three (README, Real models)


def extract_answer(text: str) -> str | None:
    """The integer a chat answer gives: the first one after the last "=", else the first one; None if none."""
    number = INTEGER.search(text.rpartition("=")[2]) or INTEGER.search(text)
    return str(int(number.group())) if number else None


@register_task("arithmetic")
class ArithmeticTask(Task):
    name = "arithmetic"
    alphabet = "0123456789+="

    def __init__(self, max_operand: int = 19, eval_fraction: float = 0.2, teacher_accuracy: float = 0.4,
                 question: str = CHAT_QUESTION):
        if max_operand < 2:
            raise ValueError(f"max_operand must be at least 2 (got {max_operand})")
        if not 0 < eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1) (got {eval_fraction})")
        if not 0 < teacher_accuracy <= 1:
            raise ValueError(f"teacher_accuracy must be in (0, 1] (got {teacher_accuracy})")
        try:
            question.format(a=1, b=2)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"question must be a template using {{a}} and {{b}} only (got {question!r})") from None
        self.max_operand, self.teacher_accuracy, self.question = max_operand, teacher_accuracy, question
        pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
        random.Random(SPLIT_SEED).shuffle(pairs)
        n_eval = max(1, round(eval_fraction * len(pairs)))
        self._eval, self._train = pairs[:n_eval], pairs[n_eval:]

    def _example(self, a: int, b: int) -> tuple[str, str]:
        return (self.question.format(a=a, b=b) if self.chat else f"{a}+{b}="), str(a + b)

    def train_dataset(self, seed: int) -> Dataset:
        pairs = list(self._train)
        random.Random(seed).shuffle(pairs)
        prompts, answers = zip(*(self._example(a, b) for a, b in pairs))
        return Dataset.from_dict({"prompt": list(prompts), "answer": list(answers)})

    def eval_split(self) -> list[tuple[str, str]]:
        return [self._example(a, b) for a, b in self._eval]

    def score(self, completion: str, answer: str) -> float:
        return float((extract_answer(completion) if self.chat else completion.strip()) == answer)

    def reachable(self, text: str, answer: str) -> bool | None:
        """The bare-prompt reward is ``completion.strip() == answer``: whitespace, then a prefix of the answer, or the
        whole answer followed by whitespace. A chat answer is scored by extraction, which has no finite set."""
        if self.chat:
            return None
        return answer.startswith(text.lstrip()) or text.strip() == answer

    def teacher(self, rng: random.Random) -> tuple[str, str]:
        # Every pair, held-out ones included: the teacher is the pretraining, the split guards RL.
        a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
        prompt, answer = self._example(a, b)
        if rng.random() < self.teacher_accuracy:
            return prompt, answer
        return prompt, str(max(0, a + b + rng.choice(NEAR_MISSES)))
