"""The built-in task: small additions, exact-match reward, a fixed held-out split.

    prompt "12+7="   answer "19"   reward 1 if the completion is exactly the answer, else 0

The teacher that warm-starts the tiny policy is deliberately imperfect: right with probability
``teacher_accuracy``, a near miss (answer ± 1 or 2) otherwise. The policy then knows the answer
without preferring it, the regime in which RL sharpens (sparse exact rewards on a policy that
rarely samples the answer gave no signal in our measurements).
"""

from __future__ import annotations

import random

from datasets import Dataset

from .base import Task, register_task

# The held-out split is fixed for every run and seed, so accuracies compare across a sweep.
SPLIT_SEED = 1234
NEAR_MISSES = (-2, -1, 1, 2)


@register_task("arithmetic")
class ArithmeticTask(Task):
    name = "arithmetic"
    alphabet = "0123456789+="

    def __init__(self, max_operand: int = 19, eval_fraction: float = 0.2, teacher_accuracy: float = 0.4):
        if max_operand < 2:
            raise ValueError(f"max_operand must be at least 2 (got {max_operand})")
        if not 0 < eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1) (got {eval_fraction})")
        if not 0 < teacher_accuracy <= 1:
            raise ValueError(f"teacher_accuracy must be in (0, 1] (got {teacher_accuracy})")
        self.max_operand, self.teacher_accuracy = max_operand, teacher_accuracy
        pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
        random.Random(SPLIT_SEED).shuffle(pairs)
        n_eval = max(1, round(eval_fraction * len(pairs)))
        self._eval, self._train = pairs[:n_eval], pairs[n_eval:]

    @staticmethod
    def _example(a: int, b: int) -> tuple[str, str]:
        return f"{a}+{b}=", str(a + b)

    def train_dataset(self, seed: int) -> Dataset:
        pairs = list(self._train)
        random.Random(seed).shuffle(pairs)
        prompts, answers = zip(*(self._example(a, b) for a, b in pairs))
        return Dataset.from_dict({"prompt": list(prompts), "answer": list(answers)})

    def eval_split(self) -> list[tuple[str, str]]:
        return [self._example(a, b) for a, b in self._eval]

    def score(self, completion: str, answer: str) -> float:
        return float(completion.strip() == answer)

    def teacher(self, rng: random.Random) -> tuple[str, str]:
        # Every pair, held-out ones included: the teacher is the pretraining, the split guards RL.
        a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
        prompt, answer = self._example(a, b)
        if rng.random() < self.teacher_accuracy:
            return prompt, answer
        return prompt, str(max(0, a + b + rng.choice(NEAR_MISSES)))
