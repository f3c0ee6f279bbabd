"""The default built-in task: arithmetic in a noisy corpus, whose warm-started tiny policy samples a long tail."""

from __future__ import annotations

import collections
import random
import re

import torch

from workbench.rollout import generate
from workbench.models import char_tokenizer, load_policy
from workbench.models import load as policy_module
from workbench.tasks import get_task
from workbench.tasks.noisy import LEXICON


def test_split_is_the_arithmetic_split_and_the_reward_wants_the_bare_number():
    task = get_task("noisy_arithmetic")
    assert task.eval_split() == get_task("arithmetic").eval_split()
    assert not {p for p, _ in task.eval_split()} & set(task.train_dataset(seed=0)["prompt"])
    completions = ["19", "19 the water", "19,", " the 19", "191", "18 19", "", " 19"]
    # The default wants the bare number: chatter after it costs the reward too.
    assert task.reward(completions, ["19"] * len(completions)) == [1, 0, 0, 0, 0, 0, 0, 0]
    opening = get_task("noisy_arithmetic", concise=False)
    assert opening.reward(completions, ["19"] * len(completions)) == [1, 1, 1, 0, 0, 0, 0, 0]


def test_words_are_single_tokens_and_every_teacher_completion_round_trips():
    task = get_task("noisy_arithmetic")
    tokenizer = char_tokenizer(task.alphabet, task.words)
    assert len(tokenizer) == 2 + len(set(task.alphabet)) + len(LEXICON)
    assert tokenizer.convert_ids_to_tokens(tokenizer("12+7= about 19 answer")["input_ids"]) == \
        ["1", "2", "+", "7", "=", " about", " ", "1", "9", " answer"]
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(task.teacher(rng))
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.pad_token_id not in ids and tokenizer.decode(ids) == text


def test_the_teacher_knows_the_sum_and_spreads_its_noise_over_the_lexicon():
    task = get_task("noisy_arithmetic", teacher_accuracy=0.4, distractor_rate=0.2, chatter_rate=0.5)
    rng = random.Random(0)
    right = opened = chattered = 0
    words: collections.Counter[str] = collections.Counter()
    n = 4000
    for _ in range(n):
        prompt, completion = task.teacher(rng)
        opening, number, chatter = re.fullmatch(r"( [a-z]+ )?(\d+)((?: [a-z]+)*)", completion).groups()
        total = sum(map(int, prompt.rstrip("=").split("+")))
        assert abs(int(number) - total) <= 2
        right += int(number) == total
        opened += opening is not None
        chattered += chatter != ""
        words.update((opening or "").split() + chatter.split())
    assert 0.37 < right / n < 0.43 and 0.17 < opened / n < 0.23 and 0.47 < chattered / n < 0.53
    # A long tail: most of the lexicon is used, and the commonest word is a small share of the noise.
    assert len(words) > 0.6 * len(LEXICON) and words.most_common(1)[0][1] < 0.2 * sum(words.values())


def test_the_warm_started_policy_samples_a_long_tail_and_knows_the_sums():
    """The regime the quickstart runs in: many sampled tokens are rare, yet the answer is the mode."""
    task = get_task("noisy_arithmetic")
    model, tokenizer = load_policy("tiny", None, task)
    prompts = [p for p, _ in task.eval_split()[:24]]
    torch.manual_seed(0)
    sampled = generate(model, tokenizer, [p for p in prompts for _ in range(8)], 8, temperature=1.0)
    mu = torch.tensor([lp for row in sampled.logprobs for lp in row]).exp()
    assert (mu < 0.1).float().mean() > 0.2 and (mu < 0.01).float().mean() > 0.05
    greedy = generate(model, tokenizer, prompts, 8, temperature=None)
    answers = [a for _, a in task.eval_split()[:24]]
    assert sum(task.reward(greedy.texts, answers)) / len(prompts) > 0.15


def test_the_warm_start_is_deterministic_and_its_word_tokenizer_survives_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setitem(policy_module.WARM_START, "steps", 3)
    task = get_task("noisy_arithmetic")
    first, tokenizer = policy_module.warm_start(task)
    cached, cached_tokenizer = load_policy("tiny", None, task)
    for (name, a), b in zip(first.state_dict().items(), cached.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # What a run needs of the cached tokenizer: prompts encode, and sampled word tokens decode, as built.
    assert cached_tokenizer("12+7=")["input_ids"] == tokenizer("12+7=")["input_ids"]
    ids = tokenizer(" about 19 the answer")["input_ids"]
    assert len(ids) == 6 and cached_tokenizer.decode(ids) == " about 19 the answer"
    # Loaded as Qwen2's tokenizer (what AutoTokenizer picks from the model type), the words would vanish.
    assert cached_tokenizer(" about 19 the answer")["input_ids"] == ids
    # Another noise level is another base policy.
    assert policy_module.tiny_policy_folder(get_task("noisy_arithmetic", chatter_rate=0.3)) != \
        policy_module.tiny_policy_folder(task)
