"""Held-out evaluation: the mean reward of k samples per prompt at the training temperature, greedy, and exact.

``eval/p_correct`` (when the task can enumerate what its reward accepts, :meth:`Task.reachable`) is the
probability that one sampled completion is rewarded, computed without sampling: every token sequence of at
most ``max_new_tokens`` tokens whose text is rewarded is walked as a tree from the prompt (a branch is cut as
soon as its text can no longer become rewarded), its probability is the product of the policy's next-token
probabilities at the sampling temperature (teacher-forced), ending with EOS or at the token budget, and the
rewarded leaves are summed; then averaged over the held-out prompts. It is what ``eval/accuracy`` estimates
from k samples, with no sampling noise: a deterministic function of the weights. It draws no random number,
so the sampled metrics and training are the same with or without it.

Exact for a tokenizer whose text is the concatenation of its tokens' texts (special tokens decode to nothing)
under plain temperature sampling, which is how :func:`workbench.rollout.generate` samples (top-k 0, top-p 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..rollout import generate
from .base import Task
from .chat import as_prompt

ROWS_PER_FORWARD = 256


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer: Any, task: Task, n_prompts: int, k: int, temperature: float,
             max_new_tokens: int, seed: int) -> dict[str, float]:
    """``eval/accuracy`` (sampled, mean over k), ``eval/greedy_accuracy`` and, when the task enumerates its
    rewarded completions, ``eval/p_correct`` (exact, see the module docstring) on the first n held-out prompts.

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
    metrics = {
        "eval/accuracy": _mean(task.reward(sampled.texts, [a for a in answers for _ in range(k)])),
        "eval/greedy_accuracy": _mean(task.reward(greedy.texts, answers)),
    }
    exact = p_correct(model, tokenizer, task, pairs, temperature, max_new_tokens)
    if exact is not None:
        metrics["eval/p_correct"] = _mean(exact)
    return metrics


def enumerable(task: Task, pairs: list[tuple[str, str]]) -> bool:
    """Whether the task can enumerate its rewarded completions for these held-out pairs."""
    return bool(pairs) and all(task.reachable("", answer) is not None for _, answer in pairs)


@torch.no_grad()
def p_correct(model: torch.nn.Module, tokenizer: Any, task: Task, pairs: list[tuple[str, str]],
              temperature: float, max_new_tokens: int) -> list[float] | None:
    """Per held-out (prompt, answer): P(a completion sampled at ``temperature`` within ``max_new_tokens`` is
    rewarded), exact; None when the task cannot enumerate its rewarded completions."""
    if not enumerable(task, pairs) or max_new_tokens < 1:
        return None
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pieces: list[str] | None = None
    children: dict[tuple[str, str], list[int]] = {}  # (text, answer) → tokens that keep it reachable

    def next_tokens(text: str, answer: str) -> list[int]:
        key = (text, answer)
        if key not in children:
            children[key] = [j for j, piece in enumerate(pieces) if j != eos and task.reachable(text + piece, answer)]
        return children[key]

    prompt_ids = [_prompt_ids(tokenizer, task, p) for p, _ in pairs]
    totals = [0.0] * len(pairs)
    # A frontier node: (pair index, completion token ids, completion text, probability of the path so far).
    frontier: list[tuple[int, list[int], str, float]] = [(i, [], "", 1.0) for i in range(len(pairs))]
    while frontier:
        log_probs = _next_token_log_probs(model, [prompt_ids[i] + ids for i, ids, _, _ in frontier], temperature,
                                          tokenizer.pad_token_id, device)
        if pieces is None:  # the model's output width, which may exceed the tokenizer's (padded embeddings)
            pieces = _pieces(tokenizer, log_probs.shape[-1])
        grown = []
        for (i, ids, text, prob), row in zip(frontier, log_probs.tolist()):
            answer = pairs[i][1]
            if eos is not None and task.score(text, answer) == 1.0:
                totals[i] += prob * math.exp(row[eos])  # stops here with EOS
            for j in next_tokens(text, answer):
                child_prob = prob * math.exp(row[j])
                if child_prob == 0.0:
                    continue
                child_text = text + pieces[j]
                if len(ids) + 1 == max_new_tokens:  # the budget ends the completion
                    totals[i] += child_prob if task.score(child_text, answer) == 1.0 else 0.0
                else:
                    grown.append((i, ids + [j], child_text, child_prob))
        frontier = grown
    return totals


def _prompt_ids(tokenizer: Any, task: Task, prompt: str) -> list[int]:
    """The prompt's token ids as :func:`workbench.rollout.generate` feeds them (through the chat template for a
    chat task)."""
    if task.chat:
        text = tokenizer.apply_chat_template(as_prompt(task, prompt), tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(as_prompt(task, prompt))["input_ids"]


def _pieces(tokenizer: Any, width: int) -> list[str]:
    """Each token id's text as the completion's decoding sees it (special and unused ids: empty)."""
    out = []
    for j in range(width):
        try:
            out.append(tokenizer.decode([j], skip_special_tokens=True) if j < len(tokenizer) else "")
        except (IndexError, KeyError, OverflowError, TypeError):
            out.append("")
    return out


def _next_token_log_probs(model: torch.nn.Module, rows: list[list[int]], temperature: float, pad: int | None,
                          device: torch.device) -> torch.Tensor:
    """log softmax(logits / temperature) of the token after each row, in fp32 (rows right-padded, so every real
    token keeps its position; chunks of ROWS_PER_FORWARD)."""
    out = []
    for start in range(0, len(rows), ROWS_PER_FORWARD):
        chunk = rows[start:start + ROWS_PER_FORWARD]
        width = max(map(len, chunk))
        ids = torch.tensor([r + [pad or 0] * (width - len(r)) for r in chunk], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        last = logits[torch.arange(len(chunk), device=device), mask.sum(1) - 1].float()
        out.append(F.log_softmax(last / temperature, dim=-1).cpu())
    return torch.cat(out)


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)
