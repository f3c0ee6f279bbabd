"""Models: loading the policy a run trains (the built-in tiny policy, a hub id, a folder, a GGUF file, LoRA).

The rollout engine's sampler copies live beside them: what a model is served as is a property of the model.
"""

from __future__ import annotations

from .load import char_tokenizer, gguf_source, load_policy, tiny_policy_folder

__all__ = ["char_tokenizer", "gguf_source", "load_policy", "tiny_policy_folder"]
