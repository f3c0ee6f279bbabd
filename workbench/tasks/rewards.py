"""Rewards of the dataset task: how one completion is scored against its row's reference answer.

A reward is a function ``fn(completion: str, answer: str, **params) -> float``; ``task_params.reward``
names it (a registered name or an import path ``pkg.module:fn``) and ``task_params.reward_params`` gives
its parameters. The built-in ones compare against the reference's *final answer*: the text after its
last ``####`` (GSM8K's format, where the answer field is the worked solution), else the whole reference,
stripped. A plugin gets the reference as the dataset holds it (``final_answer`` is importable).

    exact        1 if the stripped completion equals the final answer
    number       the completion's number (inside the last \\boxed{...}, else the first after the last
                 ``marker``, default "####", else the last number in it) equals the final answer's
                 number, compared numerically ("1,234" = 1234, "-5", "0.50" = 0.5)
    math_verify  math-verify's parse and verify (equivalent expressions, fractions, LaTeX, \\boxed{}):
                 the optional extra ``pip install -e '.[math]'``
    regex        ``pattern``'s one group (its last match in the completion) equals the final answer,
                 as text after stripping or as numbers
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
import threading
from functools import lru_cache
from typing import Any, Callable

from ..config import ConfigError

Reward = Callable[..., float]
MATH_EXTRA = "pip install -e '.[math]'  (the math-verify package)"

_REWARDS: dict[str, Reward] = {}


def register_reward(name: str) -> Callable[[Reward], Reward]:
    """Register ``fn(completion, answer, **params) -> float`` under ``name``; a name already taken is refused."""

    def decorator(fn: Reward) -> Reward:
        if name in _REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        _REWARDS[name] = fn
        return fn

    return decorator


def available_rewards() -> list[str]:
    return sorted(_REWARDS)


def final_answer(reference: str) -> str:
    """The reference's final answer: what follows its last ``####`` (GSM8K), else all of it; stripped."""
    return reference.rpartition("####")[2].strip() if "####" in reference else reference.strip()


# "1,234.5" (thousands groups) before plain "1234.5"; a minus sign counts unless it follows a digit ("10-3").
NUMBER = re.compile(r"(?<![\d)])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")


def to_number(text: str) -> float | None:
    """The number ``text`` is (commas, "$", "%" and a trailing "." allowed), None if it is not one."""
    cleaned = text.strip().strip("$%").rstrip(".").strip()
    match = NUMBER.fullmatch(cleaned)
    return float(match.group().replace(",", "")) if match else None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (nested braces kept), None when there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None  # cut off before its closing brace


def extract_number(text: str, marker: str = "####") -> float | None:
    """The number a text gives: inside its last \\boxed{}, else the first after its last ``marker``, else its last."""
    boxed = last_boxed(text)
    if boxed is not None:
        numbers = NUMBER.findall(boxed)
        return float(numbers[-1].replace(",", "")) if numbers else None
    if marker and marker in text:
        number = NUMBER.search(text.rpartition(marker)[2])
        return float(number.group().replace(",", "")) if number else None
    numbers = NUMBER.findall(text)
    return float(numbers[-1].replace(",", "")) if numbers else None


def same_number(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@register_reward("exact")
def exact(completion: str, answer: str) -> float:
    return float(completion.strip() == final_answer(answer))


@register_reward("number")
def number(completion: str, answer: str, marker: str = "####") -> float:
    return float(same_number(extract_number(completion, marker), extract_number(final_answer(answer), marker)))


@register_reward("regex")
def regex(completion: str, answer: str, pattern: str = "") -> float:
    matches = list(_compiled(pattern).finditer(completion))
    if not matches or matches[-1].group(1) is None:
        return 0.0
    got, want = matches[-1].group(1).strip(), final_answer(answer)
    return float(got == want or same_number(to_number(got), to_number(want)))


@register_reward("math_verify")
def math_verify(completion: str, answer: str) -> float:
    from math_verify import parse, verify

    # math-verify bounds each parse and comparison with SIGALRM, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = _gold(final_answer(answer), timeout)
    if not gold:
        return 0.0
    return float(verify(gold, parse(completion, parsing_timeout=timeout), timeout_seconds=timeout))


@lru_cache(maxsize=4096)
def _gold(reference: str, timeout: int | None) -> list[Any]:
    from math_verify import parse

    return parse(reference, parsing_timeout=timeout)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _check_regex(params: dict[str, Any]) -> None:
    pattern = params.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("reward_params: reward 'regex' needs pattern, a regular expression with one group, "
                         "e.g. {pattern: 'Answer: (\\S+)'}")
    try:
        groups = re.compile(pattern).groups
    except re.error as err:
        raise ValueError(f"reward_params.pattern: not a regular expression ({err}): {pattern!r}") from None
    if groups != 1:
        raise ValueError(f"reward_params.pattern: expected exactly one group (…), got {groups}: {pattern!r}")


def _check_math_verify(params: dict[str, Any]) -> None:
    if importlib.util.find_spec("math_verify") is None:
        raise ConfigError(f"reward: 'math_verify' needs the math-verify package; install the extra: {MATH_EXTRA}")


# Checks a reward's parameters (and what it needs installed) before any row is scored.
_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"regex": _check_regex, "math_verify": _check_math_verify}


def make_reward(name: str, params: dict[str, Any] | None = None) -> Callable[[str, str], float]:
    """``(completion, answer) -> float`` for the reward ``name`` with ``params``; bad input raises ValueError.

    The message names the key (``reward`` or ``reward_params``) and what was expected.
    """
    params = dict(params or {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"reward: expected one of {', '.join(available_rewards())} or an import path "
                         f"'package.module:fn' (got {name!r})")
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"reward: cannot load {name!r} ({err})") from None
        if not callable(fn):
            raise ValueError(f"reward: {name!r} is {type(fn).__name__}, expected a function "
                             "fn(completion, answer, **reward_params) -> float")
    elif name in _REWARDS:
        fn = _REWARDS[name]
    else:
        raise ValueError(f"reward: unknown reward {name!r}; expected one of {', '.join(available_rewards())} "
                         "or an import path 'package.module:fn'")
    if name in _CHECKS:
        _CHECKS[name](params)
    try:
        signature = inspect.signature(fn)
    except ValueError:  # a builtin without a signature: the probe on the first row checks it
        signature = None
    if signature is not None and not _binds(signature, {}):
        raise ValueError(f"reward: {name!r} must take (completion, answer, **reward_params) and return a float")
    if signature is not None and not _binds(signature, params):
        accepted = list(signature.parameters)[2:]
        raise ValueError(f"reward_params: reward {name!r} takes {', '.join(accepted) or 'no parameters'} "
                         f"(got {', '.join(params)})")

    def reward(completion: str, answer: str) -> float:
        return fn(completion, answer, **params)

    reward.__name__ = name
    return reward


def _binds(signature: inspect.Signature, params: dict[str, Any]) -> bool:
    try:
        signature.bind("completion", "answer", **params)
    except TypeError:
        return False
    return True


def probe(reward: Callable[[str, str], float], name: str, answer: str) -> None:
    """Score a row's reference against itself once, so a reward that breaks the contract fails before training."""
    try:
        value = reward(answer, answer)
    except Exception as err:  # noqa: BLE001 - a plugin may raise anything; the user needs one line
        raise ValueError(f"reward: {name!r} raised {type(err).__name__} on the first row "
                         f"({str(err).splitlines()[0] if str(err) else 'no message'})") from None
    if not isinstance(value, bool) and not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"reward: {name!r} returned {value!r} on the first row, expected a finite float")
