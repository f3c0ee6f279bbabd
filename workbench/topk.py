"""The top-K path: the sampler's top-K log-probs beside μ, and π at the same token ids from the training forward.

K is ``top_logprobs`` (the RunConfig field ``rollout_top_k``), as an inference engine's "top logprobs": how many of
the sampler's most likely tokens it reports, not a truncation of sampling (that is ``Truncation.top_k``).
TRL 1.16 hands ``rollout_func``'s extra fields to the reward functions only, never to ``_compute_loss``,
and it shuffles and splits the generation batch before the loss sees it. So the rollout engine owns a
:class:`TopLogprobs` provider keyed by the tokens themselves (prompt and completion ids), which the loss and the
batch keeper ask for their batch's rows. π at those ids comes from the SAME forward pass that gives log π:
TRL's fused LM head never materialises the logits (no hook on the output embedding would fire), so
:func:`capture_hidden` keeps the backbone's last hidden states h and :func:`policy_logp_at` scores only
the K ids: log π(i) = log π(y) + (z_i − z_y)/T with z = W·h (+ b), the normaliser cancelling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

T = TypeVar("T")

# Positions scored at a time by policy_logp_at (bounds the gathered head rows to SCORING_CHUNK·(K+1)·d floats).
SCORING_CHUNK = 2048


class TopLogprobs:
    """The sampler's top-K (log μ, ids) per sampled position of the latest generation, keyed by (prompt ids,
    completion ids): the rollout engine fills it (``replace``), the loss asks it for the objectives' input
    (``scored_forward``) and the batch keeper for its batch's rows (``lookup``)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._rows: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}

    def replace(self, prompt_ids: list[list[int]], completion_ids: list[list[int]], logps: torch.Tensor,
                ids: torch.Tensor) -> None:
        """Keep one generation: ``logps``/``ids`` (N, L_max, K) for N completions (cut lengths taken from the ids)."""
        self._rows = {(tuple(p), tuple(c)): (logps[n, :len(c)], ids[n, :len(c)])
                      for n, (p, c) in enumerate(zip(prompt_ids, completion_ids))}

    def lookup(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log μ, ids) at the top-K, (B, T, K), for a padded loss batch; padding positions get −inf and id 0."""
        prompt_ids, prompt_mask = batch["prompt_ids"], batch["prompt_mask"]
        completion_ids, completion_mask = batch["completion_ids"], batch["completion_mask"]
        logps = torch.full((*completion_ids.shape, self.k), -torch.inf)
        ids = torch.zeros((*completion_ids.shape, self.k), dtype=torch.long)
        for n in range(completion_ids.size(0)):
            length = int(completion_mask[n].sum())
            key = (tuple(prompt_ids[n][prompt_mask[n].bool()].tolist()), tuple(completion_ids[n, :length].tolist()))
            if key not in self._rows:
                if length == 0:
                    continue
                raise RuntimeError("a completion reached the loss without the sampler's top-K: rollout and loss "
                                   "batches disagree")
            row_logps, row_ids = self._rows[key]
            logps[n, :length], ids[n, :length] = row_logps[:length], row_ids[:length]
        return logps.to(completion_ids.device), ids.to(completion_ids.device)

    def scored_forward(self, model: torch.nn.Module, forward: Callable[[], T], batch: dict[str, Any],
                       temperature: float) -> tuple[T, tuple[torch.Tensor, torch.Tensor]]:
        """``forward()`` (whose first output is log π of the completion tokens) with the backbone of ``model``
        watched, and the objectives' ``top_k`` from that very pass: (log π, log μ) over top-K ∪ {sampled}."""
        with capture_hidden(model) as hidden:
            out = forward()
        mu_top, ids = self.lookup(batch)
        return out, top_k_pairs(model, torch.cat(hidden), out[0], batch["sampling_per_token_logps"],
                                batch["completion_ids"], mu_top, ids, temperature)


def topk_set(pi_top: torch.Tensor, mu_top: torch.Tensor, ids: torch.Tensor, logp: torch.Tensor,
             behaviour_logp: torch.Tensor, sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π, log μ) over S = top-K ∪ {sampled}, (B, T, K+1); a sampled token already in the top-K is listed
    a second time at −inf in both, so it counts once."""
    listed = (ids == sampled.unsqueeze(-1)).any(-1, keepdim=True)
    extra_pi = logp.detach().unsqueeze(-1).masked_fill(listed, -torch.inf)
    extra_mu = behaviour_logp.unsqueeze(-1).to(mu_top.dtype).masked_fill(listed, -torch.inf)
    return torch.cat([pi_top.to(extra_pi.dtype), extra_pi], -1), torch.cat([mu_top, extra_mu], -1)


def _backbone(model: torch.nn.Module) -> torch.nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
    return base.base_model


@contextlib.contextmanager
def capture_hidden(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the backbone's last hidden states for every forward inside the block (TRL may chunk the batch)."""
    captured: list[torch.Tensor] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        captured.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = _backbone(model).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@torch.no_grad()
def policy_logp_at(model: torch.nn.Module, hidden: torch.Tensor, logp: torch.Tensor, completion_ids: torch.Tensor,
                   ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π at ``ids`` (B, T, K) from the hidden states of the pass that gave ``logp`` (log π of the sampled
    tokens ``completion_ids``): only K+1 rows of the head are scored, the normaliser cancels."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    keep = completion_ids.size(1)
    # TRL scores positions [:-1] of the sequence and keeps the last `keep`: the states before each completion token.
    h = hidden[:, -keep - 1:-1].reshape(-1, hidden.size(-1))
    every = torch.cat([completion_ids.unsqueeze(-1), ids], -1).reshape(h.size(0), -1)
    z = torch.empty(every.shape, device=h.device)
    # In chunks of positions: the gathered head rows are (positions, K+1, d), too large for a whole batch at once.
    for start in range(0, h.size(0), SCORING_CHUNK):
        rows, chosen = h[start:start + SCORING_CHUNK].float(), every[start:start + SCORING_CHUNK]
        z[start:start + SCORING_CHUNK] = torch.einsum("nd,nkd->nk", rows, head.weight[chosen].float())
        if head.bias is not None:
            z[start:start + SCORING_CHUNK] += head.bias[chosen].float()
    z = z.reshape(*ids.shape[:2], -1)
    return logp.detach().float().unsqueeze(-1) + (z[..., 1:] - z[..., :1]) / temperature


def top_k_pairs(model: torch.nn.Module, hidden: torch.Tensor, logp: torch.Tensor, behaviour_logp: torch.Tensor,
                completion_ids: torch.Tensor, mu_top: torch.Tensor, ids: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The objectives' ``top_k``: (log π, log μ) over the sampler's top-K (``mu_top`` at ``ids``) ∪ {sampled}, π
    scored from ``hidden``, the states of the pass that gave ``logp`` (the trainer's forward, or replay's)."""
    pi_top = policy_logp_at(model, hidden, logp, completion_ids, ids, temperature)
    return topk_set(pi_top, mu_top, ids, logp, behaviour_logp, completion_ids)
