"""eval/p_correct: the exact probability of a rewarded completion, against brute force and against sampling."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.models import load_policy
from workbench.rollout import generate
from workbench.tasks import get_task

evaluation = importlib.import_module("workbench.tasks.evaluate")  # the package exports the function of this name


@pytest.fixture(scope="module", params=["noisy_arithmetic", "arithmetic"])
def policy(request):
    task = get_task(request.param)
    model, tokenizer = load_policy("tiny", None, task)
    model.eval()
    return task, model, tokenizer


def _pairs(task, n_single=3, n_double=3):
    """Held-out pairs with one-digit and two-digit answers (a 2-token budget fits both)."""
    split = task.eval_split()
    return [p for p in split if len(p[1]) == 1][:n_single] + [p for p in split if len(p[1]) == 2][:n_double]


@torch.no_grad()
def _brute_force(model, tokenizer, task, prompt, answer, temperature):
    """Σ over every completion of at most 2 tokens of the whole vocabulary (EOS first, second or never) of its
    probability × its reward, decoded as the sampler decodes it."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(prompt)["input_ids"]
    first = F.log_softmax(model(torch.tensor([ids])).logits[0, -1].double() / temperature, -1)
    vocab = first.shape[0]
    rows = torch.tensor([ids + [t] for t in range(vocab)])
    second = F.log_softmax(model(rows).logits[:, -1].double() / temperature, -1)  # [first token, second token]
    total = math.exp(first[eos]) * task.score("", answer)
    texts, probs = [], []
    for t1 in range(vocab):
        if t1 == eos:
            continue
        for t2 in range(vocab):
            completion = [t1, t2]  # cut after the first EOS, as generate does
            texts.append(completion)
            probs.append(float(first[t1] + second[t1, t2]))
    decoded = tokenizer.batch_decode(texts, skip_special_tokens=True)
    for text, log_p in zip(decoded, probs):
        if task.score(text, answer) == 1.0:
            total += math.exp(log_p)
    return total


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_p_correct_is_the_brute_force_sum_over_every_two_token_completion(policy, temperature):
    task, model, tokenizer = policy
    pairs = _pairs(task)
    exact = evaluation.p_correct(model, tokenizer, task, pairs, temperature, max_new_tokens=2)
    brute = [_brute_force(model, tokenizer, task, p, a, temperature) for p, a in pairs]
    assert exact == pytest.approx(brute, rel=1e-5, abs=1e-9)
    assert max(brute) > 0.01  # not a sum of zeros


def test_p_correct_agrees_with_20000_sampled_completions_within_their_standard_error(policy):
    task, model, tokenizer = policy
    pairs = _pairs(task, 2, 2)
    exact = evaluation.p_correct(model, tokenizer, task, pairs, 1.0, max_new_tokens=5)
    per_prompt = 5000
    hits = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for prompt, answer in pairs:
            out = generate(model, tokenizer, [prompt] * per_prompt, 5, 1.0)
            hits.append(sum(task.reward(out.texts, [answer] * per_prompt)) / per_prompt)
    estimate, target = sum(hits) / len(hits), sum(exact) / len(exact)
    standard_error = math.sqrt(sum(p * (1 - p) / per_prompt for p in exact)) / len(exact)
    assert 0.02 < target < 0.98
    assert abs(estimate - target) <= 3 * standard_error, (estimate, target, standard_error)


def test_evaluate_logs_p_correct_without_touching_the_random_stream(policy):
    task, model, tokenizer = policy
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    metrics = evaluation.evaluate(model, tokenizer, task, n_prompts=6, k=2, temperature=1.0, max_new_tokens=5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert 0 < metrics["eval/p_correct"] < 1
    assert set(metrics) == {"eval/accuracy", "eval/greedy_accuracy", "eval/p_correct"}


def test_tasks_that_cannot_enumerate_their_reward_log_no_p_correct(policy):
    task, model, tokenizer = policy
    opening = get_task("noisy_arithmetic", concise=False)
    assert opening.reachable("19", "19") is None
    assert evaluation.p_correct(model, tokenizer, opening, _pairs(task), 1.0, 5) is None
    chat = get_task("arithmetic")
    chat.chat = True
    assert chat.reachable("", "19") is None
    # The bare-prompt arithmetic reward strips whitespace; the prefixes it can still reward say so.
    plain = get_task("arithmetic")
    assert plain.reachable(" 1", "19") and plain.reachable("19 ", "19") and not plain.reachable("1 ", "19")
