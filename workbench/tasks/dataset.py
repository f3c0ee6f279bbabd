"""``task: dataset``: your own problems, from a local file or a hub dataset, scored by a reward researchers use.

    task: dataset
    task_params:
      path: configs/data/word_problems.jsonl   # .jsonl/.json/.parquet/.csv, or a hub id (openai/gsm8k)
      prompt: "{question}\\nReply with just the final number."   # a field, or a template over fields
      answer: answer                           # the field holding the reference answer
      reward: number                           # exact | number | math_verify | regex | pkg.module:fn

Every file is read through the ``datasets`` library; a hub id (with ``name`` and ``split``) needs a
network or the local hub cache, and with ``HF_HUB_OFFLINE=1`` an id not in the cache fails in one line
asking for a local file. The held-out split is ``eval_path`` (a second local file), ``eval_split`` (a
split of the hub dataset, e.g. ``test``) or else a fixed ``eval_fraction`` of the rows (default 0.2,
drawn with a fixed seed, so every run and seed evaluates on the same rows). Prompts go to a chat model
as a user message through its chat template (after ``system``, when given), as the built-in tasks' do;
to a model without a template as plain text (``system`` and a blank line first). Rewards: ``rewards.py``.

Everything is read and checked in the constructor, which ``runner.prepare_run`` calls before any folder
exists: a missing file, an empty one, a field the rows lack (the message lists the fields they have), a
row without an answer or a prompt template naming an absent field are one-line errors.

The tiny policy (``model: tiny``) warm-starts on a teacher that writes each row's final answer after its
prompt, right with probability ``teacher_accuracy`` and another row's answer otherwise (every row, as the
arithmetic teacher: the teacher is the pretraining, the split guards RL); its vocabulary is the
characters of the prompts and answers. That fits a character-level dataset of short prompts (the tests
use one); real datasets want a real model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

from datasets import Dataset

from .base import Task, register_task
from .rewards import final_answer, make_reward, probe

SPLIT_SEED = 1234  # the held-out rows of an eval_fraction split are the same for every run and seed
DEFAULT_EVAL_FRACTION = 0.2
FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
FORMAT_NAMES = {".jsonl": "JSON lines", ".json": "JSON", ".parquet": "Parquet", ".csv": "CSV"}
FILE_KINDS = "a .jsonl, .json, .parquet or .csv file"


@register_task("dataset")
def make_dataset_task(**params: Any) -> DatasetTask:
    """The registry's factory: unknown keys are named with the expected ones (not a Python TypeError)."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; expected {', '.join(PARAMS)}")
    return DatasetTask(**params)


class DatasetTask(Task):
    name = "dataset"

    def __init__(self, path: str | None = None, name: str | None = None, split: str = "train",
                 prompt: str = "question", answer: str = "answer", system: str | None = None,
                 eval_path: str | None = None, eval_split: str | None = None, eval_fraction: float | None = None,
                 reward: str = "number", reward_params: dict[str, Any] | None = None,
                 teacher_accuracy: float = 0.4):
        if not isinstance(path, str) or not path:
            raise ValueError(f"path: required: {FILE_KINDS}, or a hub dataset id such as openai/gsm8k")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("prompt: expected a field name or a template over fields such as '{question}'")
        if not isinstance(answer, str) or not answer:
            raise ValueError("answer: expected the name of the field that holds the reference answer")
        if system is not None and not isinstance(system, str):
            raise ValueError(f"system: expected a string, the system prompt (got {system!r})")
        if not 0 < teacher_accuracy <= 1:
            raise ValueError(f"teacher_accuracy must be in (0, 1] (got {teacher_accuracy})")
        if eval_fraction is not None and (eval_path is not None or eval_split is not None):
            raise ValueError("eval_fraction: give one held-out split: eval_path, eval_split or eval_fraction")
        if eval_path is not None and eval_split is not None:
            raise ValueError("eval_split: give one held-out split: eval_path, eval_split or eval_fraction")
        fraction = DEFAULT_EVAL_FRACTION if eval_fraction is None else eval_fraction
        if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1) (got {eval_fraction!r})")
        if reward_params is not None and not isinstance(reward_params, dict):
            raise ValueError(f"reward_params: expected a mapping of the reward's parameters (got {reward_params!r})")
        self._reward = make_reward(reward, reward_params)  # before reading data: a reward typo is cheaper to report

        local = _is_local(path)
        if eval_split is not None and local:
            raise ValueError(f"eval_split: {path} is a local file; give the held-out rows as eval_path, another file")
        # Where the rows come from sits in a mapping: the tiny policy's cache key (models.load) takes a task's plain
        # attributes, and it should follow the rows' content (``fingerprint``), not the file's name.
        self.source = {"path": path, "name": name, "split": split, "reward": reward,
                       "reward_params": dict(reward_params or {})}
        self.system, self.teacher_accuracy = system, teacher_accuracy
        self.prompt_field, self.answer_field = prompt, answer
        rows = self._rows("path", path, split)
        if eval_path is not None:
            self._train, self._eval = rows, self._rows("eval_path", eval_path, split, local_only=True)
        elif eval_split is not None:
            self._train, self._eval = rows, self._rows("eval_split", path, eval_split)
        else:
            if len(rows) < 2:
                raise ValueError(f"path: {self._where(path, split)} has {len(rows)} row; a held-out fraction needs "
                                 "at least 2 (or give eval_path)")
            order = list(range(len(rows)))
            random.Random(SPLIT_SEED).shuffle(order)
            n_eval = min(len(rows) - 1, max(1, round(fraction * len(rows))))
            self._eval = [rows[i] for i in order[:n_eval]]
            self._train = [rows[i] for i in order[n_eval:]]
        probe(self._reward, reward, self._train[0][1])
        # The tiny policy's vocabulary and cache key: what its teacher can say.
        self._rows = self._train + self._eval  # every row: the vocabulary and the tiny policy's teacher read them
        texts = [p for p, _ in self._rows] + [final_answer(a) for _, a in self._rows]
        self.alphabet = "".join(sorted(set("".join(texts) + (system or "") + "\n")))
        self.fingerprint = hashlib.sha256(json.dumps([self._train, self._eval]).encode()).hexdigest()[:16]

    # ---- reading ------------------------------------------------------------------------------------

    def _where(self, source: str, split: str) -> str:
        return source if _is_local(source) else f"{source} ({', '.join(filter(None, (self.source['name'], split)))})"

    def _rows(self, key: str, source: str, split: str, local_only: bool = False) -> list[tuple[str, str]]:
        """(prompt text, reference answer) of every row of ``source``; any problem is one ValueError line."""
        if local_only and not _is_local(source):
            raise ValueError(f"{key}: expected {FILE_KINDS} (got {source!r})")
        data = _load(key, source, self.source["name"], split)
        where = self._where(source, split)
        if len(data) == 0:
            raise ValueError(f"{key}: {where} has no rows")
        fields = list(data.column_names)
        available = f"(its fields: {', '.join(fields)})"
        prompt_fields = _template_fields(self.prompt_field)
        for field in prompt_fields if prompt_fields is not None else [self.prompt_field]:
            if field not in fields:
                what = "the template names" if prompt_fields is not None else "no field"
                raise ValueError(f"prompt: {what} {field!r}, which {where} does not have {available}")
        if self.answer_field not in fields:
            raise ValueError(f"answer: no field {self.answer_field!r} in {where} {available}")
        rows = []
        for i, row in enumerate(data, start=1):
            reference = row[self.answer_field]
            if reference is None or not str(reference).strip():
                raise ValueError(f"answer: row {i} of {where} has no {self.answer_field!r}")
            if prompt_fields is None:
                text = row[self.prompt_field]
                if text is None or not str(text).strip():
                    raise ValueError(f"prompt: row {i} of {where} has no {self.prompt_field!r}")
            else:
                missing = [f for f in prompt_fields if row[f] is None]
                if missing:
                    raise ValueError(f"prompt: row {i} of {where} has no {missing[0]!r}")
                text = self.prompt_field.format(**{f: row[f] for f in prompt_fields})
            rows.append((str(text), str(reference)))
        return rows

    # ---- the Task contract ----------------------------------------------------------------------------

    def train_dataset(self, seed: int) -> Dataset:
        rows = list(self._train)
        random.Random(seed).shuffle(rows)
        return Dataset.from_dict({"prompt": [p for p, _ in rows], "answer": [a for _, a in rows]})

    def eval_split(self) -> list[tuple[str, str]]:
        return list(self._eval)

    def score(self, completion: str, answer: str) -> float:
        return float(self._reward(completion, answer))

    def teacher(self, rng: random.Random) -> tuple[str, str]:
        rows = self._rows
        prompt, reference = rng.choice(rows)
        if rng.random() >= self.teacher_accuracy:
            reference = rng.choice(rows)[1]  # another row's answer (the same one by chance, on a small dataset)
        text = f"{self.system}\n\n{prompt}" if self.system else prompt  # as chat.as_prompt words it for tiny
        return text, final_answer(reference)


PARAMS = ("path", "name", "split", "prompt", "answer", "system", "eval_path", "eval_split", "eval_fraction",
          "reward", "reward_params", "teacher_accuracy")


def describe_task(task: str, params: dict[str, Any]) -> str:
    """What a run config trains on, in words for a report: the task, and a dataset task's dataset and reward."""
    return describe(params) if task == "dataset" else f"`{task}`"


def describe(params: dict[str, Any]) -> str:
    """The dataset and reward of a ``task: dataset`` config, in words for a report."""
    path = params.get("path", "?")
    source = f"`{path}`" if _is_local(str(path)) else \
        f"`{path}` ({', '.join(str(v) for v in (params.get('name'), params.get('split', 'train')) if v)})"
    reward = params.get("reward", "number")
    extra = params.get("reward_params") or {}
    shown = f"`{reward}`" + (f" ({', '.join(f'{k}={v!r}' for k, v in extra.items())})" if extra else "")
    return f"dataset {source}, reward {shown}"


def _is_local(source: str) -> bool:
    """A local file by its extension (it may still be missing), else a hub dataset id."""
    return Path(source).suffix.lower() in FORMATS or Path(source).expanduser().is_file()


def _template_fields(prompt: str) -> list[str] | None:
    """The fields a template names, or None when ``prompt`` is a plain field name."""
    if "{" not in prompt and "}" not in prompt:
        return None
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as err:
        raise ValueError(f"prompt: not a template ({err}); write {{{{ and }}}} for literal braces: {prompt!r}") from None
    fields = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field or not field.isidentifier():
            raise ValueError(f"prompt: template fields must be field names such as {{question}} (got {{{field}}}); "
                             f"write {{{{ and }}}} for literal braces: {prompt!r}")
        fields.append(field)
    return fields


def _load(key: str, source: str, name: str | None, split: str) -> Dataset:
    """The rows of a local file or a hub dataset; every failure is one ValueError line naming ``key``."""
    import datasets

    if _is_local(source):
        path = Path(source).expanduser()
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(f"{key}: {source}: expected {FILE_KINDS}")
        if not path.is_file():
            raise ValueError(f"{key}: {source}: no such file")
        if path.stat().st_size == 0:
            raise ValueError(f"{key}: {source} has no rows (empty file)")
        # A throwaway cache: a local file is read whole into memory and leaves nothing behind.
        cache = tempfile.mkdtemp(prefix="workbench-dataset-")
        try:
            with _quiet(datasets):
                return datasets.load_dataset(FORMATS[suffix], data_files=str(path), split="train", cache_dir=cache,
                                             keep_in_memory=True)
        except Exception as err:  # noqa: BLE001 - pyarrow, pandas and json all raise their own kinds
            raise ValueError(f"{key}: cannot read {source} as {FORMAT_NAMES[suffix]} ({_root(err)})") from None
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or datasets.config.HF_HUB_OFFLINE
    try:
        with _quiet(datasets):
            return datasets.load_dataset(source, name, split=split)
    except Exception as err:  # noqa: BLE001
        if offline:
            raise ValueError(f"{key}: {source!r} is not a local file and HF_HUB_OFFLINE=1 cannot fetch the hub dataset "
                             f"(not in the local cache); download it where there is a network and give {FILE_KINDS}"
                             ) from None
        raise ValueError(f"{key}: cannot load hub dataset {source!r} ({_root(err)}); or give {FILE_KINDS}") from None


@contextlib.contextmanager
def _quiet(datasets: Any):
    """No progress bars or logged errors from ``datasets``: a failure is reported once, by us."""
    verbosity = datasets.utils.logging.get_verbosity()
    bars = datasets.utils.are_progress_bars_disabled()
    datasets.utils.logging.set_verbosity(datasets.utils.logging.CRITICAL + 10)
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        datasets.utils.logging.set_verbosity(verbosity)
        if not bars:
            datasets.utils.enable_progress_bars()


def _root(err: BaseException) -> str:
    """The first line of the innermost cause (``datasets`` wraps a parse error in a generic one)."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
