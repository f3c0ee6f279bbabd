"""One real optimizer step of WorkbenchGRPOTrainer on fixed completions, in one process or under torchrun.

Every process builds the same trainer for each (objective, aggregation) and trains one step with DDP; the
rollout is deterministic (a completion depends only on its place in the global batch, μ is fixed), so one
process and N processes see the same global batch. The main process keeps, per case, the gradient just
before the optimizer step and the logged step (scalars and histogram counts) of its run record.
tests/test_distributed_gradient.py compares a 1-process run with a 2-process one.

    torchrun --nproc_per_node 2 tests/distributed_steps.py OUT.pt PROMPTS_PER_PROCESS ACCUMULATION...
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback

from workbench.config import RunConfig
from workbench.diagnostics import StepDiagnostics
from workbench.objectives import get_objective
from workbench.ranks import processes
from workbench.runner import _grpo_args
from workbench.models import load_policy
from workbench.tasks import get_task
from workbench.tracking import PeerRecorder, RunRecorder, load_run
from workbench.trainer import LossSetting, WorkbenchGRPOTrainer

CASES = [(objective, aggregation) for objective in ("grpo", "drpo")
         for aggregation in ("token_mean", "sequence_mean", "fixed_horizon")]
GENERATIONS = 4


class FixedRollout:
    """rollout_func: completion i of the global batch is sum + i % 3 (right for i % 3 == 0), one digit longer
    for odd i; μ is a fixed pattern, so r ≠ 1 and clips, masks and the DRPO regulariser all act."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list[list[Any]]]:
        first = trainer.accelerator.process_index * len(prompts)  # TRL hands each rank its slice, in rank order
        prompt_ids, completion_ids, logprobs = [], [], []
        for i, prompt in enumerate(prompts, start=first):
            a, b = (int(x) for x in prompt.rstrip("=").split("+"))
            text = str(a + b + i % 3) + "7" * (i % 2)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            prompt_ids.append(self.tokenizer(prompt)["input_ids"])
            completion_ids.append(ids)
            logprobs.append([-0.1 * (1 + (i + j) % 5) for j in range(len(ids))])
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}


class _KeepGradient(TrainerCallback):
    def __init__(self) -> None:
        self.gradient: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        # After DDP's all-reduce and the whole accumulation window, before the update.
        self.gradient = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def one_step(objective: str, aggregation: str, prompts_per_process: int, accumulation: int, base: Any,
             tokenizer: Any, folder: Path) -> dict[str, Any]:
    cfg = RunConfig(objective=objective, aggregation=aggregation, prompts_per_step=prompts_per_process,
                    num_generations=GENERATIONS, gradient_accumulation_steps=accumulation, max_steps=1,
                    max_completion_length=6, tracking={"wandb_mode": "disabled", "histogram_every": 1})
    args = _grpo_args(cfg, folder)
    args.max_grad_norm = 0.0  # compare the raw gradient, not a clipped one
    config = cfg.model_dump(mode="json")
    main = processes().is_main_process
    recorder = RunRecorder(folder, config) if main else PeerRecorder(folder, config)
    keep = _KeepGradient()
    task = get_task("arithmetic")
    trainer = WorkbenchGRPOTrainer(model=copy.deepcopy(base), reward_funcs=[task.reward], args=args,
                                   train_dataset=task.train_dataset(0), processing_class=tokenizer,
                                   rollout_func=FixedRollout(tokenizer),
                                   loss=LossSetting(get_objective(objective), aggregation),
                                   diagnostics=StepDiagnostics(recorder, histogram_every=1), callbacks=[keep])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    recorder.finish("finished")
    if not main:
        return {}
    record = load_run(folder)
    return {"gradient": keep.gradient, "scalars": record.scalars[0],
            "histograms": {h["name"]: h["counts"] for h in record.histograms}}


def run_cases(prompts_per_process: int, accumulations: list[int], folder: Path) -> dict[Any, dict[str, Any]]:
    """{(objective, aggregation, accumulation): gradient, scalars, histograms} on the main process."""
    task = get_task("arithmetic")
    base, tokenizer = load_policy("tiny", None, task, seed=0)
    return {(objective, aggregation, k): one_step(objective, aggregation, prompts_per_process, k, base, tokenizer,
                                                  folder / f"{objective}-{aggregation}-{k}")
            for objective, aggregation in CASES for k in accumulations}


if __name__ == "__main__":
    out, prompts, *accumulations = sys.argv[1:]
    processes()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_cases(int(prompts), [int(k) for k in accumulations], Path(tmp))
    if processes().is_main_process:
        torch.save(results, out)
        print(json.dumps(sorted(str(k) for k in results)))
