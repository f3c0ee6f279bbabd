"""The rollout engine's extra costs: the int8/int4 sampler sync per generation, and the lag snapshots' memory.

Sync: ``RolloutEngine.sync`` of the tiny policy (noisy_arithmetic) at bf16 (a cast), int8 (GGUF Q8_0) and int4
(GGUF Q4_1), median of ``--repeats``, against the generation it precedes (64 completions of 5 tokens). For
SmolLM2-135M the round trip is timed on random tensors of its exact shapes (30 layers, width 576, MLP 1536, a
49,152-token tied embedding: 134.5M weights) rather than on the loaded model (a minute to load); with LoRA the base
is frozen and quantised once, so only a full fine-tune pays it every generation.

Lag: ``rollout_lag: k`` keeps k copies of the trainable weights in fp32: k × 4 bytes × trainable parameters (the
tiny policy's counted from the model, SmolLM2's from its shapes; full fine-tune and LoRA r = 16 on every linear).
Prints the numbers and records them in bench/results/rollout.json.

    python bench/bench_rollout.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402

from workbench.models import load_policy  # noqa: E402
from workbench.models.quantise import quantisable, round_trip  # noqa: E402
from workbench.rollout import RolloutEngine, trainable_snapshot  # noqa: E402
from workbench.tasks import get_task  # noqa: E402

# SmolLM2-135M-Instruct (its config.json): per layer q, k, v, o, gate, up, down as (out, in); tied embedding.
SMOLLM2_LAYERS, SMOLLM2_WIDTH, SMOLLM2_KV, SMOLLM2_MLP, SMOLLM2_VOCAB = 30, 576, 192, 1536, 49152
SMOLLM2_LINEAR = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
LORA_RANK = 16
LAGS = (2, 4, 8)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def smollm2_sizes() -> dict[str, int]:
    linear = SMOLLM2_LAYERS * sum(o * i for o, i in SMOLLM2_LINEAR)
    norms = (2 * SMOLLM2_LAYERS + 1) * SMOLLM2_WIDTH
    lora = SMOLLM2_LAYERS * sum(LORA_RANK * (o + i) for o, i in SMOLLM2_LINEAR)
    return {"parameters": linear + SMOLLM2_VOCAB * SMOLLM2_WIDTH + norms, "lora_parameters": lora}


def smollm2_round_trip_seconds(precision: str) -> float:
    """One round trip of every quantisable SmolLM2 tensor (random values of its shapes)."""
    gen = torch.Generator().manual_seed(0)
    total = 0.0
    shapes = [(SMOLLM2_VOCAB, SMOLLM2_WIDTH)] + SMOLLM2_LINEAR * SMOLLM2_LAYERS
    for shape in shapes:
        weight = torch.randn(shape, generator=gen) * 0.02
        start = time.perf_counter()
        round_trip(weight, precision)
        total += time.perf_counter() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    task = get_task("noisy_arithmetic")
    policy, tokenizer = load_policy("tiny", None, task)
    prompts = [row["prompt"] for row in task.train_dataset(0).select(range(8))] * 8
    result: dict[str, object] = {"repeats": opts.repeats}
    tiny: dict[str, float] = {}
    for precision in ("bf16", "int8", "int4"):
        engine = RolloutEngine(policy, tokenizer, precision, 5, 1.0)
        tiny[f"sync_{precision}_ms"] = timed(lambda: engine.sync(policy), opts.repeats) * 1e3
        torch.manual_seed(0)
        tiny[f"generate_{precision}_ms"] = timed(lambda: engine.sample(prompts), opts.repeats) * 1e3
    for precision in ("int8", "int4"):
        extra = tiny[f"sync_{precision}_ms"] - tiny["sync_bf16_ms"]
        tiny[f"extra_sync_{precision}_ms"] = extra
        tiny[f"extra_sync_{precision}_over_generation"] = extra / tiny[f"generate_{precision}_ms"]
        print(f"tiny {precision}: sync {tiny[f'sync_{precision}_ms']:.1f} ms (bf16 {tiny['sync_bf16_ms']:.1f} ms), "
              f"extra {extra:.1f} ms = {100 * tiny[f'extra_sync_{precision}_over_generation']:.0f}% of a "
              f"generation of 64 completions ({tiny[f'generate_{precision}_ms']:.0f} ms)")
    trainable = sum(t.numel() for t in trainable_snapshot(policy).values())
    quantised = sum(t.numel() for n, t in policy.state_dict().items() if quantisable(n, t))
    tiny.update(trainable_parameters=trainable, quantised_parameters=quantised)
    for k in LAGS:
        tiny[f"lag{k}_snapshot_mb"] = k * 4 * trainable / 2**20
    print(f"tiny: {trainable:,} trainable parameters; lag snapshots "
          + ", ".join(f"k={k}: {tiny[f'lag{k}_snapshot_mb']:.1f} MB" for k in LAGS))
    result["tiny"] = tiny

    smol: dict[str, float] = dict(smollm2_sizes())
    for precision in ("int8", "int4"):
        smol[f"round_trip_{precision}_s"] = smollm2_round_trip_seconds(precision)
        print(f"SmolLM2-135M {precision}: round trip of every matrix {smol[f'round_trip_{precision}_s']:.1f} s "
              "per generation (full fine-tune; LoRA: once)")
    for k in LAGS:
        smol[f"lag{k}_snapshot_mb_full"] = k * 4 * smol["parameters"] / 2**20
        smol[f"lag{k}_snapshot_mb_lora"] = k * 4 * smol["lora_parameters"] / 2**20
    print(f"SmolLM2-135M: {smol['parameters']:,} parameters, LoRA r={LORA_RANK} {smol['lora_parameters']:,}; lag "
          "snapshots " + ", ".join(f"k={k}: {smol[f'lag{k}_snapshot_mb_full']:.0f} MB full / "
                                   f"{smol[f'lag{k}_snapshot_mb_lora']:.0f} MB LoRA" for k in LAGS))
    result["smollm2_135m"] = smol
    out = Path(__file__).parent / "results" / "rollout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
