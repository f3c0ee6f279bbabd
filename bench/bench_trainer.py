"""Step time of WorkbenchGRPOTrainer (objective grpo, every diagnostic on) against stock GRPOTrainer.

Same tiny model, same rollout function, same batch; the two trainers alternate in one process so
machine noise hits both. Prints the ratio (goal ≤ 1.05) and records it in bench/results/trainer.json.

    python bench/bench_trainer.py [--steps 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import warnings
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

from transformers import PrinterCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from workbench.config import RunConfig  # noqa: E402
from workbench.diagnostics import StepDiagnostics  # noqa: E402
from workbench.objectives import get_objective  # noqa: E402
from workbench.rollout import RolloutEngine  # noqa: E402
from workbench.runner import _grpo_args  # noqa: E402
from workbench.models import load_policy  # noqa: E402
from workbench.tasks import get_task  # noqa: E402
from workbench.tracking import RunRecorder  # noqa: E402
from workbench.trainer import LossSetting, WorkbenchGRPOTrainer  # noqa: E402


def step_times(workbench: bool, cfg: RunConfig, folder: Path) -> list[float]:
    """Per-step wall times (TRL's own `step_time` metric) of one fresh trainer."""
    task = get_task(cfg.task)
    model, tokenizer = load_policy(cfg.model, None, task, seed=cfg.seed)
    engine = RolloutEngine(model, tokenizer, cfg.rollout_precision, cfg.max_completion_length, cfg.temperature)
    args: GRPOConfig = _grpo_args(cfg, folder)
    common = dict(model=model, reward_funcs=[task.reward], args=args, train_dataset=task.train_dataset(cfg.seed),
                  processing_class=tokenizer, rollout_func=engine)
    if workbench:
        recorder = RunRecorder(folder / "record", cfg.model_dump(mode="json"))
        trainer = WorkbenchGRPOTrainer(**common, loss=LossSetting(get_objective("grpo")),
                                       diagnostics=StepDiagnostics(recorder, cfg.tracking.histogram_every))
    else:
        stock_args = _grpo_args(cfg.model_copy(update={"objective": "trl:grpo"}), folder)  # loss_type="grpo"
        trainer = GRPOTrainer(**{**common, "args": stock_args})
    trainer.remove_callback(PrinterCallback)
    times: list[float] = []
    original_log = trainer.log

    def log(logs, start_time=None):
        if "step_time" in trainer._metrics["train"]:
            times.extend(trainer._metrics["train"]["step_time"])
        original_log(logs, start_time)

    trainer.log = log
    trainer.train()
    return times[2:]  # the first steps pay for lazy initialisation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    cfg = RunConfig(max_steps=opts.steps, rollout_precision="bf16", tracking={"wandb_mode": "disabled"})
    medians: dict[str, list[float]] = {"stock": [], "workbench": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(opts.rounds):
            for name in ("stock", "workbench"):
                start = time.perf_counter()
                times = step_times(name == "workbench", cfg, Path(tmp) / f"{name}-{r}")
                medians[name].append(statistics.median(times))
                print(f"round {r} {name:9s} median step {medians[name][-1] * 1e3:7.1f} ms "
                      f"({time.perf_counter() - start:.1f} s)")
    stock, ours = statistics.median(medians["stock"]), statistics.median(medians["workbench"])
    result = {"stock_step_ms": stock * 1e3, "workbench_step_ms": ours * 1e3, "ratio": ours / stock,
              "steps": opts.steps, "rounds": opts.rounds, "goal": "ratio <= 1.05"}
    print(f"\nWorkbenchGRPOTrainer / GRPOTrainer step time: {result['ratio']:.3f} (goal ≤ 1.05)")
    out = Path(__file__).parent / "results" / "trainer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
