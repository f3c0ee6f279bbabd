"""The rollout engine: samples with a precision-cast copy of the policy, so that μ ≠ π for real.

On TRL's CPU path the sampler is the training model itself, μ = π and every objective collapses to
the same policy gradient. Here the tokens come from a separate copy of the policy, synced from the
trainer's weights at every generation and cast to the rollout precision (fp32, bf16, fp16, fp8
simulated by a scaled float8 weight round-trip, or int8/int4 GGUF blocks through ``models.quantise``),
the way an inference engine serves the policy. The log-probabilities of the sampled tokens under that
copy are returned as TRL's ``logprobs``, which TRL hands back to the loss as
``inputs["sampling_per_token_logps"]``: that is μ, frozen for every update made from the batch.

Two more sources of mismatch real systems have: ``lag`` k serves the weights of k optimizer steps earlier
(asynchronous RL: a ring of k snapshots of the trainable weights, taken before each optimizer step, so the
batch generated at step t is sampled by the weights of step t − k); ``Truncation`` samples from the top-p /
top-k / min-p truncated distribution (transformers' warpers, in their order: top-k, top-p, min-p) and reports
μ either under that renormalised distribution (``processed``, vLLM's default) or under the model's full softmax
(``raw``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from .models.quantise import QUANT_TYPES, quantisable, round_trip
from .topk import TopLogprobs

# The sampler's compute dtype for each of config.ROLLOUT_PRECISIONS (tests/test_rollout.py: the same names);
# int8/int4 are weight-only (dequantised weights, fp32 compute).
ROLLOUT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16,
                  "int8": torch.float32, "int4": torch.float32}
FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
Prompt = str | list[dict[str, str]]  # text, or TRL's conversational messages


def fp8_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """Quantise to float8 e4m3 with a per-tensor scale (as fp8 serving does) and back."""
    scale = weight.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    return ((weight.float() / scale).to(FP8).float() * scale).to(weight.dtype)


@dataclass(frozen=True)
class Truncation:
    """Truncated sampling and which μ is reported (``processed``: the renormalised kept set; ``raw``: full softmax)."""

    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    logprobs: str = "processed"

    @property
    def active(self) -> bool:
        return self.top_p < 1.0 or self.top_k > 0 or self.min_p > 0.0


@dataclass
class Generation:
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # cut after the first EOS (kept)
    texts: list[str]  # completions decoded without special tokens
    logprobs: list[list[float]]  # log-prob of each sampled token under the sampling model (empty when greedy)
    top_logprobs: tuple[torch.Tensor, torch.Tensor] | None = None  # the sampler's top-K (log μ, ids), (N, L_max, K)


@torch.no_grad()
def generate(model: torch.nn.Module, tokenizer: Any, prompts: list[Prompt], max_new_tokens: int,
             temperature: float | None, top_logprobs: int = 0, truncation: Truncation | None = None) -> Generation:
    """Sample (``temperature``) or decode greedily (None) one completion per prompt, left-padded in one batch.

    A prompt is text, or TRL's conversational list of ``{role, content}`` messages, which goes through the
    tokenizer's chat template with the generation prompt (the template writes its own special tokens).
    ``top_logprobs`` K > 0 (sampling only) also returns the sampler's K most likely tokens per position with their
    log μ (not a truncation: that is ``truncation.top_k``).
    An active ``truncation`` (sampling only) samples from the truncated distribution; its ``logprobs`` says which μ.
    """
    device = next(model.parameters()).device
    chat = not isinstance(prompts[0], str)
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts] \
        if chat else prompts
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=not chat).to(device)
    truncated = truncation is not None and truncation.active and bool(temperature)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature else \
        {"do_sample": False}
    if truncated:
        sampling.update(top_k=truncation.top_k, top_p=truncation.top_p, min_p=truncation.min_p or None)
    out = model.generate(**batch, **sampling, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, output_logits=temperature is not None,
                         output_scores=truncated, return_dict_in_generate=True)
    new_tokens = out.sequences[:, batch["input_ids"].shape[1]:]
    if temperature:
        # log μ of the sampled token, in fp32 from the sampler's logits (an inference engine does the same);
        # processed truncation: the warped scores (logits / T, −inf outside the kept set) the token was drawn from.
        processed = truncated and truncation.logprobs == "processed"
        logits = torch.stack(out.scores, dim=1).float() if processed else \
            torch.stack(out.logits, dim=1).float() / temperature
        log_mu = F.log_softmax(logits, dim=-1)
        logps = torch.gather(log_mu, 2, new_tokens.unsqueeze(-1)).squeeze(-1).tolist()
        top = tuple(log_mu.topk(top_logprobs, dim=-1)) if top_logprobs else None
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


def trainable_snapshot(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the tensors that train, by state-dict name (tied names share one copy)."""
    copies: dict[int, torch.Tensor] = {}
    return {name: copies.setdefault(id(t), t.detach().clone())
            for name, t in policy.state_dict(keep_vars=True).items() if t.requires_grad}


class RolloutEngine(TrainerCallback):
    """TRL ``rollout_func``: one completion per prompt it receives (TRL repeats each prompt G times).

    Build it from the policy *before* the trainer patches the policy's forward, so the sampling copy
    is a plain model; its weights are refreshed from the trainer at every call. With ``top_logprobs`` K > 0 it owns
    the :class:`TopLogprobs` provider (``self.top_logprobs``) of the latest generation's top-K, which the loss and
    the batch keeper ask (TRL would not pass them).
    With ``lag`` k > 0 it is also a trainer callback (pass it in ``callbacks``): before every optimizer step it
    keeps a copy of the trainable weights, at most k of them, and a generation at step t is served by the copy
    of step max(0, t − k). ``served_lag`` is how many steps old the latest generation's weights were.
    """

    def __init__(self, policy: torch.nn.Module, tokenizer: Any, precision: str, max_new_tokens: int,
                 temperature: float, top_logprobs: int = 0, lag: int = 0, truncation: Truncation | None = None):
        if precision not in ROLLOUT_DTYPES:
            raise ValueError(f"rollout_precision must be one of {', '.join(ROLLOUT_DTYPES)}; got {precision!r}")
        self.precision = precision
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_logprobs = TopLogprobs(top_logprobs) if top_logprobs else None
        self.lag = lag
        self.truncation = truncation
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}  # optimizer step → its trainable weights
        self.served_lag = 0
        self._trainer: Any = None
        self._quantised_versions: dict[str, int] = {}  # a frozen tensor already quantised at this version
        self.sampler = copy.deepcopy(policy).to(ROLLOUT_DTYPES[precision]).eval()
        self.sampler.requires_grad_(False)

    @torch.no_grad()
    def sync(self, policy: torch.nn.Module, weights: dict[str, torch.Tensor] | None = None) -> None:
        """Copy the trainer's current weights (``weights`` override them by name) into the sampler, casting
        (fp8-rounding, int8/int4-quantising) them. A frozen tensor (a LoRA base) is quantised once."""
        source = policy.state_dict(keep_vars=self.precision in QUANT_TYPES)
        if weights:
            source = {**source, **weights}
        for name, param in self.sampler.state_dict().items():
            if self.precision in QUANT_TYPES and quantisable(name, param):
                value = source[name]
                frozen = not value.requires_grad and not (weights and name in weights)
                if frozen and self._quantised_versions.get(name) == value._version:
                    continue  # unchanged since it was quantised into the sampler
                param.copy_(round_trip(value.detach(), self.precision))
                if frozen:
                    self._quantised_versions[name] = value._version
                continue
            param.copy_(source[name])
            if self.precision == "fp8" and param.dim() >= 2:
                param.copy_(fp8_round_trip(param))

    def sample(self, prompts: list[Prompt]) -> dict[str, list[list[Any]]]:
        """Sample one completion per prompt; return prompt ids, completion ids (cut after EOS) and μ."""
        out = generate(self.sampler, self.tokenizer, prompts, self.max_new_tokens, self.temperature,
                       0 if self.top_logprobs is None else self.top_logprobs.k, self.truncation)
        if self.top_logprobs is not None:
            self.top_logprobs.replace(out.prompt_ids, out.completion_ids, *out.top_logprobs)
        return {"prompt_ids": out.prompt_ids, "completion_ids": out.completion_ids, "logprobs": out.logprobs}

    def __call__(self, prompts: list[Prompt], trainer: Any) -> dict[str, list[list[Any]]]:
        # The trainer moves the policy to its device after the copy was taken; follow it once.
        self.sampler.to(trainer.accelerator.device)
        self._trainer = trainer
        step = trainer.state.global_step
        served = max(0, step - self.lag)
        self.sync(trainer.accelerator.unwrap_model(trainer.model), None if served == step else self.snapshots[served])
        self.served_lag = step - served
        return self.sample(prompts)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Keep the weights of this step (the next generation, at step ≥ t + 1, needs those of t + 1 − k on)."""
        if not self.lag or self._trainer is None:
            return
        step = state.global_step
        self.snapshots[step] = trainable_snapshot(self._trainer.accelerator.unwrap_model(self._trainer.model))
        for old in [s for s in self.snapshots if s <= step - self.lag]:
            del self.snapshots[old]
