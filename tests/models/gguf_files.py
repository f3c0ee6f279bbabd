"""A tiny llama-architecture GGUF file written with the ``gguf`` package: weights, BPE tokenizer, chat template.

The suite loads it through ``model: path/to/file.gguf`` instead of depending on a 93 MB download. Without the
``gguf`` package (the smollm2 extra) the tests that need it skip, saying which extra to install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers.convert_slow_tokenizer import bytes_to_unicode

HIDDEN, LAYERS, HEADS, FFN = 32, 2, 4, 64
SPECIALS = ("<|im_start|>", "<|im_end|>")
MERGES = ("1 2", "Ġ 1", "= Ġ")
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CONTROL, NORMAL = 3, 1  # llama.cpp token types


def require_gguf():
    """The ``gguf`` module, or a skip: GGUF files and the int8/int4 sampler's quantiser need it."""
    return pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[smollm2]'")


def write_tiny_gguf(path: Path, chat_template: str | None = CHAT_TEMPLATE, seed: int = 0) -> Path:
    gguf = require_gguf()

    tokens = list(bytes_to_unicode().values()) + [m.replace(" ", "") for m in MERGES] + list(SPECIALS)
    eos = tokens.index("<|im_end|>")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([CONTROL if t in SPECIALS else NORMAL for t in tokens])
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(tokens.index("<|im_start|>"))
    writer.add_eos_token_id(eos)
    writer.add_pad_token_id(eos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        values = np.ones(shape) if len(shape) == 1 else rng.normal(0, 0.2, shape)
        writer.add_tensor(name, values.astype(np.float32))

    tensor("token_embd.weight", len(tokens), HIDDEN)
    tensor("output_norm.weight", HIDDEN)
    tensor("output.weight", len(tokens), HIDDEN)
    for i in range(LAYERS):
        for name, shape in (("attn_norm", (HIDDEN,)), ("ffn_norm", (HIDDEN,)), ("attn_q", (HIDDEN, HIDDEN)),
                            ("attn_k", (HIDDEN, HIDDEN)), ("attn_v", (HIDDEN, HIDDEN)),
                            ("attn_output", (HIDDEN, HIDDEN)), ("ffn_gate", (FFN, HIDDEN)),
                            ("ffn_up", (FFN, HIDDEN)), ("ffn_down", (HIDDEN, FFN))):
            tensor(f"blk.{i}.{name}.weight", *shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
