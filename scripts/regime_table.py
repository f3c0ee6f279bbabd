"""The regime table (README "Mismatch regimes"): every run folder under the given folders, one row per setting.

    python scripts/regime_table.py /tmp/regime [more folders] [--csv out.csv]

A row is one setting of the mismatch sources (rollout_precision, rollout_lag, num_iterations, sampling_top_p,
learning_rate); its columns are means over the training steps: mean |π − μ| (tv/mean), tv/max, mismatch/kl (k1,
π_old against μ), read from the grpo run of the row, then each objective's frac/trust_region, and grpo's held-out
accuracy from the base policy to the end. Runs of other objectives (pg) add their own columns; collapsed runs
(summary collapse_step) are counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from workbench.tracking import collapse_step

SETTING = ("rollout_precision", "rollout_lag", "num_iterations", "sampling_top_p", "learning_rate")
DEFAULTS = {"rollout_lag": 0, "sampling_top_p": 1.0}


def read(run: Path) -> dict | None:
    summary = json.loads((run / "summary.json").read_text())
    if summary.get("status") != "finished":
        return None
    config = json.loads((run / "config.json").read_text())
    rows = [json.loads(line) for line in (run / "scalars.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["step"] > 0 and "tv/mean" in r]

    def mean(key):
        values = [r[key] for r in train if key in r]
        return statistics.fmean(values) if values else float("nan")

    evals = [r for r in rows if "eval/accuracy" in r]
    return {
        "setting": tuple(config.get(k, DEFAULTS.get(k)) for k in SETTING),
        "objective": config["objective"], "seed": config["seed"], "path": str(run),
        "tv_mean": mean("tv/mean"), "tv_max": mean("tv/max"), "kl": mean("mismatch/kl"),
        "trust_region": mean("frac/trust_region"),
        "base": evals[0]["eval/accuracy"], "final": evals[-1]["eval/accuracy"],
        # Runs recorded before summaries held it: computed the same way from the reward curve.
        "collapse_step": summary["collapse_step"] if "collapse_step" in summary else
        collapse_step([(r["step"], r["reward/mean"]) for r in train if "reward/mean" in r]),
        "steps": len(train),
    }


def label(setting: tuple) -> str:
    precision, lag, iterations, top_p, lr = setting
    parts = [precision, f"lag {lag}", f"{iterations} upd/batch"]
    if top_p < 1:
        parts.append(f"top_p {top_p}")
    parts.append(f"lr {lr:g}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    opts = parser.parse_args()
    runs = [r for folder in opts.folders for s in sorted(folder.rglob("summary.json")) if (r := read(s.parent))]
    by_setting: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by_setting[run["setting"]][run["objective"]].append(run)
    objectives = sorted({r["objective"] for r in runs}, key=lambda o: ("grpo", "dppo_tv", "drpo").index(o)
                        if o in ("grpo", "dppo_tv", "drpo") else 9)
    print("| setting | mean \\|π−μ\\| | tv/max | mismatch/kl | "
          + " | ".join(f"{o} frac/trust_region" for o in objectives) + " | grpo eval/accuracy base → final (gain) |"
          + " collapsed |")
    print("|" + " --- |" * (6 + len(objectives)))
    for setting in sorted(by_setting, key=lambda s: tuple(str(x) for x in s)):
        arms = by_setting[setting]
        shift = (arms.get("grpo") or next(iter(arms.values())))[0]
        cells = [label(setting), f"{shift['tv_mean']:.4f}", f"{shift['tv_max']:.3f}", f"{shift['kl']:.4f}"]
        for o in objectives:
            seeds = arms.get(o, [])
            cells.append(f"{100 * statistics.fmean(r['trust_region'] for r in seeds):.2f}%" if seeds else "–")
        if "grpo" in arms:
            g = arms["grpo"][0]
            cells.append(f"{100 * g['base']:.1f}% → {100 * g['final']:.1f}% ({100 * (g['final'] - g['base']):+.1f})")
        else:
            cells.append("–")
        collapsed = [f"{o} {sum(r['collapse_step'] is not None for r in rs)}/{len(rs)}" for o, rs in arms.items()
                     if any(r["collapse_step"] is not None for r in rs)]
        cells.append(", ".join(collapsed) or "none")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
