"""The rollout engine: samples with a precision-cast copy of the policy, so that μ ≠ π for real.

On TRL's CPU path the sampler is the training model itself, μ = π and every objective collapses to
the same policy gradient. Here the tokens come from a separate copy of the policy, synced from the
trainer's weights at every generation and cast to the rollout precision (fp32, bf16, fp16, or fp8
simulated by a scaled float8 weight round-trip), the way an inference engine serves the policy.
The log-probabilities of the sampled tokens under that copy are returned as TRL's ``logprobs``,
which TRL hands back to the loss as ``inputs["sampling_per_token_logps"]``: that is μ, frozen for
every update made from the batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .topk import TopKStore

ROLLOUT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}
FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
Prompt = str | list[dict[str, str]]  # text, or TRL's conversational messages


def fp8_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """Quantise to float8 e4m3 with a per-tensor scale (as fp8 serving does) and back."""
    scale = weight.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    return ((weight.float() / scale).to(FP8).float() * scale).to(weight.dtype)


@dataclass
class Generation:
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # cut after the first EOS (kept)
    texts: list[str]  # completions decoded without special tokens
    logprobs: list[list[float]]  # log-prob of each sampled token under the sampling model (empty when greedy)
    top_k: tuple[torch.Tensor, torch.Tensor] | None = None  # the sampler's top-K (log μ, ids), (N, L_max, K)


@torch.no_grad()
def generate(model: torch.nn.Module, tokenizer: Any, prompts: list[Prompt], max_new_tokens: int,
             temperature: float | None, top_k: int = 0) -> Generation:
    """Sample (``temperature``) or decode greedily (None) one completion per prompt, left-padded in one batch.

    A prompt is text, or TRL's conversational list of ``{role, content}`` messages, which goes through the
    tokenizer's chat template with the generation prompt (the template writes its own special tokens).
    ``top_k`` > 0 (sampling only) also returns the sampler's K most likely tokens per position with their log μ.
    """
    device = next(model.parameters()).device
    chat = not isinstance(prompts[0], str)
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts] \
        if chat else prompts
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=not chat).to(device)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature else \
        {"do_sample": False}
    out = model.generate(**batch, **sampling, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, output_logits=temperature is not None,
                         return_dict_in_generate=True)
    new_tokens = out.sequences[:, batch["input_ids"].shape[1]:]
    if temperature:
        # log μ of the sampled token, in fp32 from the sampler's logits (an inference engine does the same).
        logits = torch.stack(out.logits, dim=1).float() / temperature
        log_mu = F.log_softmax(logits, dim=-1)
        logps = torch.gather(log_mu, 2, new_tokens.unsqueeze(-1)).squeeze(-1).tolist()
        top = tuple(log_mu.topk(top_k, dim=-1)) if top_k else None
    else:
        logps, top = [[] for _ in prompts], None
    prompt_ids, completion_ids, logprobs = [], [], []
    for row, keep, ids, lp in zip(batch["input_ids"], batch["attention_mask"], new_tokens.tolist(), logps):
        length = next((i + 1 for i, t in enumerate(ids) if t == tokenizer.eos_token_id), len(ids))
        prompt_ids.append(row[keep.bool()].tolist())
        completion_ids.append(ids[:length])
        logprobs.append(lp[:length])
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return Generation(prompt_ids, completion_ids, texts, logprobs, top)


class RolloutEngine:
    """TRL ``rollout_func``: one completion per prompt it receives (TRL repeats each prompt G times).

    Build it from the policy *before* the trainer patches the policy's forward, so the sampling copy
    is a plain model; its weights are refreshed from the trainer at every call. With ``top_k`` > 0 the
    sampler's top-K of the latest generation wait in ``top_k_store`` for the loss (TRL would not pass them).
    """

    def __init__(self, policy: torch.nn.Module, tokenizer: Any, precision: str, max_new_tokens: int,
                 temperature: float, top_k: int = 0):
        if precision not in ROLLOUT_DTYPES:
            raise ValueError(f"rollout_precision must be one of {', '.join(ROLLOUT_DTYPES)}; got {precision!r}")
        self.precision = precision
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_k_store = TopKStore() if top_k else None
        self.sampler = copy.deepcopy(policy).to(ROLLOUT_DTYPES[precision]).eval()
        self.sampler.requires_grad_(False)

    @torch.no_grad()
    def sync(self, policy: torch.nn.Module) -> None:
        """Copy the trainer's current weights into the sampler, casting (and fp8-rounding) them."""
        source = policy.state_dict()
        for name, param in self.sampler.state_dict().items():
            param.copy_(source[name])
            if self.precision == "fp8" and param.dim() >= 2:
                param.copy_(fp8_round_trip(param))

    def sample(self, prompts: list[Prompt]) -> dict[str, list[list[Any]]]:
        """Sample one completion per prompt; return prompt ids, completion ids (cut after EOS) and μ."""
        out = generate(self.sampler, self.tokenizer, prompts, self.max_new_tokens, self.temperature, self.top_k)
        if self.top_k_store is not None:
            self.top_k_store.replace(out.prompt_ids, out.completion_ids, *out.top_k)
        return {"prompt_ids": out.prompt_ids, "completion_ids": out.completion_ids, "logprobs": out.logprobs}

    def __call__(self, prompts: list[Prompt], trainer: Any) -> dict[str, list[list[Any]]]:
        # The trainer moves the policy to its device after the copy was taken; follow it once.
        self.sampler.to(trainer.accelerator.device)
        self.sync(trainer.accelerator.unwrap_model(trainer.model))
        return self.sample(prompts)
