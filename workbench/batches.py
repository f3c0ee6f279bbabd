"""Kept batches: the batch an update saw and the weights it started from, for ``workbench replay``.

With ``tracking.keep_batches_every: N`` the trainer hands every N-th optimizer step's loss inputs to a
:class:`BatchKeeper`, which writes under ``runs/<name>/batches/step-<k>/`` (k = the step as logged in
``scalars.jsonl``):

    batch-<j>.safetensors        micro-batch j as the loss saw it: prompt_ids, prompt_mask, completion_ids,
                                 completion_mask, advantages, sampling_per_token_logps (log μ), loss_weights
                                 (the aggregation's per-token w, loss = Σ w·ℓ_t), and when present
                                 old_per_token_logps (log π_old), ref_per_token_logps, tool_mask, and the
                                 sampler's top-K (top_k_logps, top_k_ids)
    grad_weight-<j>.safetensors  g_t = −∂loss/∂log π_t / w_t as the trainer's autograd hook read it (0 off the
                                 valid tokens, objectives.loss.valid_tokens): the source array of that step's
                                 grad_weight/* histograms
    weights.safetensors          the trainable parameters just before the update (all of them for a fully
                                 trained policy, the adapter for LoRA), unless above the size cap
    meta.json                    step, micro-batches, whether the weights were kept and why not

Keeping reads tensors the trainer already holds and writes them: it draws no random number and changes no
value the run computes (``tests/replay/test_replay.py`` checks a run's ``scalars.jsonl`` bit for bit).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

BATCHES_DIR = "batches"
# What the loss inputs hold that replay needs; the optional ones are kept when TRL provides them.
BATCH_KEYS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
              "sampling_per_token_logps")
OPTIONAL_KEYS = ("old_per_token_logps", "ref_per_token_logps", "tool_mask")


def step_folder(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / BATCHES_DIR / f"step-{step}"


def kept_steps(run_dir: str | Path) -> list[int]:
    """The steps a run kept, in order (only complete ones: a meta.json and at least one micro-batch)."""
    root = Path(run_dir) / BATCHES_DIR
    steps = []
    for folder in root.glob("step-*") if root.is_dir() else ():
        suffix = folder.name.removeprefix("step-")
        if suffix.isdigit() and (folder / "meta.json").is_file() and any(folder.glob("batch-*.safetensors")):
            steps.append(int(suffix))
    return sorted(steps)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name (tied weights once): all of them for a full policy, the adapter for LoRA."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True).contiguous()


class BatchKeeper:
    """Writes the kept steps of one run (main process only); ``keep`` is the trainer's one call per loss."""

    def __init__(self, run_dir: str | Path, every: int, max_mb: float):
        self.run_dir, self.every, self.max_bytes = Path(run_dir), every, int(max_mb * 2**20)
        self._micro: dict[int, int] = {}
        self._warned = False

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def keep(self, step: int, model: torch.nn.Module, inputs: dict[str, Any], loss_weights: torch.Tensor,
             top_logprobs: Any = None) -> Path | None:
        """Keep micro-batch j of optimizer step ``step`` (as logged), and the weights before its update at j = 0;
        returns the path for its g (:func:`save_grad_weight`, once backward reaches log π), None off the kept steps.
        ``top_logprobs``: the rollout engine's :class:`~workbench.topk.TopLogprobs`, when it has them."""
        if not self.due(step):
            return None
        micro = self._micro.get(step, 0)
        self._micro[step] = micro + 1
        folder = step_folder(self.run_dir, step)
        folder.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        tensors = {key: _cpu(inputs[key]) for key in BATCH_KEYS}
        tensors.update({key: _cpu(inputs[key]) for key in OPTIONAL_KEYS if isinstance(inputs.get(key), torch.Tensor)})
        tensors["loss_weights"] = _cpu(loss_weights)
        if top_logprobs is not None:  # the sampler's top-K (log μ, ids): a lookup, no computation
            mu_top, ids = top_logprobs.lookup(inputs)
            tensors["top_k_logps"], tensors["top_k_ids"] = _cpu(mu_top), _cpu(ids)
        save_file(tensors, str(folder / f"batch-{micro}.safetensors"))
        meta_path = folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if micro else {"step": step, "weights": False}
        if micro == 0:
            state = trainable_state(model)
            size = sum(p.numel() * p.element_size() for p in state.values())
            meta["weight_bytes"] = size
            if size <= self.max_bytes:
                save_file({name: _cpu(p) for name, p in state.items()}, str(folder / "weights.safetensors"))
                meta["weights"] = True
            else:
                meta["skipped"] = (f"weights {size / 2**20:.1f} MB above tracking.keep_batches_max_mb "
                                   f"{self.max_bytes / 2**20:g}")
                if not self._warned:
                    self._warned = True
                    print(f"warning: kept batches without weights: {meta['skipped']} (replay needs them)",
                          file=sys.stderr)
        meta["micro_batches"] = micro + 1
        tmp = meta_path.with_name(".meta.json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, meta_path)
        return folder / f"grad_weight-{micro}.safetensors"


def save_grad_weight(path: Path, grad_weight: torch.Tensor) -> None:
    """Write a kept micro-batch's g (objectives.loss.token_gradient_weight, as the step diagnostics read it)."""
    from safetensors.torch import save_file

    save_file({"grad_weight": _cpu(grad_weight)}, str(path))


def load_step(run_dir: str | Path, step: int) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]],
                                                      dict[str, torch.Tensor] | None,
                                                      list[torch.Tensor | None]]:
    """(meta, micro-batches, weights or None, the trainer's g per micro-batch or None) of a kept step."""
    from safetensors.torch import load_file

    folder = step_folder(run_dir, step)
    meta = json.loads((folder / "meta.json").read_text())
    batches, logged = [], []
    for j in range(meta["micro_batches"]):
        batches.append(load_file(str(folder / f"batch-{j}.safetensors")))
        g = folder / f"grad_weight-{j}.safetensors"
        logged.append(load_file(str(g))["grad_weight"] if g.is_file() else None)
    weights = load_file(str(folder / "weights.safetensors")) if meta.get("weights") else None
    return meta, batches, weights, logged
