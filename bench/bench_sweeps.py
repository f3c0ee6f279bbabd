"""Trials per hour of `workbench sweep launch` on the quickstart, with 1 and 2 worker processes.

The quickstart's base config, objectives and seeds, with a random sampler over the objective and a
budget of --trials trials (even, so that 2 workers get equal shares: the quickstart's own 3-trial grid
would cap the 2-worker gain at 1.5 by granularity alone), optionally shortened with --max-steps.
Each launch runs through the real CLI in a fresh sweeps folder; the wall time includes starting the
workers. Prints both rates and their ratio, and records them in bench/results/sweeps.json.

    python bench/bench_sweeps.py [--trials 4] [--max-steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "sweeps" / "quickstart.yaml"


def bench_file(folder: Path, workers: int, trials: int, max_steps: int | None) -> Path:
    data = yaml.safe_load(QUICKSTART.read_text())
    data |= {"name": f"bench-w{workers}", "sampler": "random", "budget": {"trials": trials}, "workers": workers}
    data["base"]["tracking"] = {"wandb_mode": "disabled"}  # the engine is measured, not W&B's file writer
    if max_steps:
        data["base"] |= {"max_steps": max_steps, "eval_every": max(1, max_steps // 4)}
    path = folder / f"bench-w{workers}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trials_per_hour(workers: int, trials: int, max_steps: int | None) -> dict[str, float]:
    from optuna.trial import TrialState

    from workbench.sweeps.store import open_study

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = bench_file(folder, workers, trials, max_steps)
        env = {**os.environ, "WORKBENCH_SWEEPS": str(folder / "sweeps"), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workbench", "sweep", "launch", str(path)], env=env, check=True,
                       capture_output=True)
        seconds = time.perf_counter() - start
        study = open_study(f"bench-w{workers}", root=folder / "sweeps")
        complete = len(study.get_trials(states=(TrialState.COMPLETE,)))
    return {"workers": workers, "trials": complete, "seconds": round(seconds, 1),
            "trials_per_hour": round(complete / seconds * 3600, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4, help="trials per launch (even)")
    parser.add_argument("--max-steps", type=int, default=100, help="steps per run (0 = the quickstart's own)")
    args = parser.parse_args()
    rates = [trials_per_hour(workers, args.trials, args.max_steps or None) for workers in (1, 2)]
    ratio = rates[1]["trials_per_hour"] / rates[0]["trials_per_hour"]
    for rate in rates:
        print(f"{rate['workers']} worker(s): {rate['trials']} trials in {rate['seconds']} s → "
              f"{rate['trials_per_hour']} trials/hour")
    print(f"ratio 2 workers / 1 worker: {ratio:.2f} (cores: {os.cpu_count()})")
    result = {"cores": os.cpu_count(), "max_steps": args.max_steps or "quickstart", "seeds_per_trial":
              len(yaml.safe_load(QUICKSTART.read_text())["seeds"]), "runs": rates, "ratio": round(ratio, 2)}
    out = ROOT / "bench" / "results" / "sweeps.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded in {out}")


if __name__ == "__main__":
    main()
