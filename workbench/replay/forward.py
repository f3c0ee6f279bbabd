"""The second forward: a run's policy at its kept steps, computing log π as the trainer's forward did."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..batches import trainable_state
from ..config import ConfigError, RunConfig
from ..trl_private import add_fused_lm_head


class Policy:
    """A run's policy at its kept steps: the base loaded as the run loaded it, the kept weights put in, the
    trainer's forward (TRL's fused LM head at the run's temperature, its autocast)."""

    def __init__(self, config: RunConfig):
        from ..models import load_policy
        from ..tasks import get_task

        self.config = config
        task = get_task(config.task, **config.task_params)
        self.model, self.tokenizer = load_policy(config.model, config.lora, task, seed=config.seed)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        add_fused_lm_head(base, config.temperature)  # as GRPOTrainer patches the policy it trains
        self.model.train()
        self.params = trainable_state(self.model)

    def load(self, weights: dict[str, torch.Tensor], where: str) -> None:
        names = set(self.params)
        if set(weights) != names:
            extra, missing = sorted(set(weights) - names), sorted(names - set(weights))
            raise ConfigError(f"{where}: the kept weights do not fit the run's policy "
                              f"(unexpected {extra[:2]}, missing {missing[:2]})")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(weights[name].to(p.dtype))

    def forward(self, batch: dict[str, torch.Tensor], top_k: bool) -> tuple[torch.Tensor, Any]:
        """log π of the completion tokens, with its graph, as ``_get_per_token_logps_and_entropies`` computes it;
        with ``top_k`` also (log π, log μ) over the sampler's kept top-K ∪ {sampled}, from the same pass."""
        from ..topk import capture_hidden, top_k_pairs

        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        keep = batch["completion_ids"].size(1)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        labels[:, :-keep] = -100
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.config.train_precision == "bf16" \
            else contextlib.nullcontext()
        # A fixed seed for whatever the forward draws (LoRA or attention dropout, if a run set any): deterministic.
        with capture_hidden(self.model) if top_k else contextlib.nullcontext() as hidden, autocast, \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            logp = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                              fused_lm_head=True).log_probs[:, -keep:]
        if not top_k:
            return logp, None
        return logp, top_k_pairs(self.model, torch.cat(hidden), logp, batch["sampling_per_token_logps"],
                                 batch["completion_ids"], batch["top_k_logps"], batch["top_k_ids"],
                                 self.config.temperature)
