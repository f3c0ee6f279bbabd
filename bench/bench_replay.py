"""Replay: its time for every objective × 10 kept steps of a quickstart-sized run, and the disk a kept step takes.

1. Trains a run with sweeps/quickstart.yaml's base config (8 prompts × 8 completions, 5 tokens, bf16 rollout,
   2 updates per batch; grpo, seed 0) for 10 steps, keeping every step, then replays every registered objective
   on the 10 kept steps (one forward per step, one backward per objective) and times it; the policy load is timed
   apart. Also the kept run's training time against its twin that keeps nothing.
2. Disk per kept step: the tiny policy's folder as written; SmolLM2-135M with LoRA r=16 (configs/smollm2.yaml's
   adapter and batch shape: 4 prompts × 8 completions, 12 tokens, its chat prompt) from a real peft wrap of the
   model, the adapter and a batch of that shape written as the keeper writes them.

    python bench/bench_replay.py [--skip-smollm2] [--threads N] [--run RUN_FOLDER [--out DIR]]

``--run`` times the replay of a run that kept batches instead (e.g. configs/replay_quickstart.yaml's 200-step run,
10 kept steps) and writes its replay files to ``--out``. Wall time depends on what else runs on the cores, so the
process's CPU time is recorded beside it. Records bench/results/replay.json (keys not measured are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
import yaml  # noqa: E402

from workbench.batches import kept_steps, step_folder  # noqa: E402
from workbench.config import LoraSettings, RunConfig  # noqa: E402
from workbench.objectives import available_objectives, get_spec  # noqa: E402
from workbench.replay import Policy, replay_run  # noqa: E402
from workbench.runner import prepare_run, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 10


def quickstart_config(folder: Path, name: str, keep: bool) -> RunConfig:
    base = yaml.safe_load((ROOT / "sweeps" / "quickstart.yaml").read_text())["base"]
    data = {**base, "objective": "grpo", "seed": 0, "max_steps": STEPS, "eval_every": 1000, "eval_prompts": 8,
            "eval_samples": 1, "output_dir": str(folder), "name": name,
            "tracking": {"wandb_mode": "disabled", **({"keep_batches_every": 1} if keep else {})}}
    return RunConfig.parse(data)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def time_replay(run: Path, out: Path | None = None, threads: int | None = None) -> dict:
    """Replay every objective (the top-K ones need the sampler's top-K: left out) on every kept step of ``run``."""
    steps = kept_steps(run)
    objectives = [o for o in available_objectives() if not get_spec(o).uses_top_k]
    if threads:
        torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    policy = Policy(RunConfig.parse(json.loads((run / "config.json").read_text())))
    load, load_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    replay = replay_run(run, objectives, policy=policy, threads=torch.get_num_threads())
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - cpu
    if out is not None:
        from workbench.replay import replay_inputs, write_replay

        write_replay([replay], out, str(run), replay_inputs({run: steps}, objectives))
    per = len(steps) * len(replay.labels)
    return {
        "objectives": len(replay.labels), "kept_steps": len(steps),
        "replay_seconds": round(elapsed, 2), "replay_cpu_seconds": round(elapsed_cpu, 2),
        "per_step_seconds": round(elapsed / len(steps), 3),
        "per_step_and_objective_ms": round(1000 * elapsed / per, 1),
        "per_step_and_objective_cpu_ms": round(1000 * elapsed_cpu / per, 1),
        "policy_load_seconds": round(load, 2), "policy_load_cpu_seconds": round(load_cpu, 2),
        "own_check": replay.own_check(), "threads": torch.get_num_threads(),
    }


def tiny(folder: Path) -> dict:
    times = {}
    for name, keep in (("plain", False), ("kept", True)):
        start = time.perf_counter()
        result = train(prepare_run(quickstart_config(folder, name, keep)))
        assert result.summary["status"] == "finished", result.summary
        times[name] = time.perf_counter() - start
    run = folder / "kept"
    steps = kept_steps(run)
    assert len(steps) == STEPS, steps
    return {**time_replay(run), **disk(run), "train_seconds_plain": round(times["plain"], 2),
            "train_seconds_kept": round(times["kept"], 2)}


def disk(run: Path) -> dict:
    steps = kept_steps(run)
    sizes = [folder_bytes(step_folder(run, k)) for k in steps]
    weights = (step_folder(run, steps[0]) / "weights.safetensors").stat().st_size
    return {"tiny_step_bytes": max(sizes), "tiny_weight_bytes": weights, "tiny_batch_bytes": max(sizes) - weights}


def smollm2(folder: Path) -> dict:
    """The adapter of configs/smollm2.yaml from a real peft wrap, and a kept batch of its shape, written to disk."""
    import torch
    from safetensors.torch import save_file

    from workbench.batches import trainable_state
    from workbench.models import load_policy
    from workbench.tasks import get_task
    from workbench.tasks.chat import as_prompt, use_chat

    cfg = yaml.safe_load((ROOT / "configs" / "smollm2.yaml").read_text())
    task = get_task(cfg["task"], **cfg["task_params"])
    start = time.perf_counter()
    model, tokenizer = load_policy("smollm2-135m", LoraSettings(r=16, alpha=32), task, seed=0)
    load = time.perf_counter() - start
    state = trainable_state(model)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(folder / "weights.safetensors"))
    use_chat(task, tokenizer)
    prompt = as_prompt(task, task.train_dataset(0)[0]["prompt"])
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) \
        if isinstance(prompt, list) else prompt
    prompt_len = len(tokenizer(text)["input_ids"])
    rows, width = cfg["prompts_per_step"] * cfg["num_generations"], cfg["max_completion_length"]
    batch = {"prompt_ids": torch.zeros(rows, prompt_len, dtype=torch.long),
             "prompt_mask": torch.ones(rows, prompt_len, dtype=torch.long),
             "completion_ids": torch.zeros(rows, width, dtype=torch.long),
             "completion_mask": torch.ones(rows, width, dtype=torch.long), "advantages": torch.zeros(rows),
             **{k: torch.zeros(rows, width) for k in ("sampling_per_token_logps", "old_per_token_logps",
                                                      "loss_weights")}}
    save_file(batch, str(folder / "batch-0.safetensors"))
    save_file({"grad_weight": torch.zeros(rows, width)}, str(folder / "grad_weight-0.safetensors"))
    return {"lora_parameters": sum(p.numel() for p in state.values()),
            "lora_weight_bytes": (folder / "weights.safetensors").stat().st_size,
            "lora_batch_bytes": (folder / "batch-0.safetensors").stat().st_size
            + (folder / "grad_weight-0.safetensors").stat().st_size,
            "prompt_tokens": prompt_len, "load_seconds": round(load, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--run", type=Path, help="time the replay of this run (kept batches) instead of training one")
    parser.add_argument("--out", type=Path, help="with --run: write its replay files here")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); sweep workers run 1")
    args = parser.parse_args()
    out = ROOT / "bench" / "results" / "replay.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            results["tiny"] = {**results.get("tiny", {}), **time_replay(args.run, args.out, args.threads),
                               **disk(args.run),
                               "run": str(args.run)}
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            results["tiny"] = tiny(Path(tmp) / "tiny")
        if not args.skip_smollm2:
            (Path(tmp) / "smol").mkdir()
            results["smollm2_lora"] = smollm2(Path(tmp) / "smol")
    results["load_average"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"recorded in {out}")


if __name__ == "__main__":
    main()
