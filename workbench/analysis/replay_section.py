"""The report's section "The same batches, every objective": replay of the batches a sweep's runs kept.

Present only when runs kept batches (``tracking.keep_batches_every``). Every such run is replayed (deterministic:
:mod:`workbench.replay`) for ``pg`` and the sweep's objectives; the cosine matrix of their parameter gradients and
the token table are averaged over kept steps and seeds, per regime (the run settings other than objective,
correction and seed that differ between the runs).

A regime's summary is saved in the sweep's folder (``replay/regime-<runs' hash>.json``) and read back by the next
build while it is current: the same arms, runs and steps, and no kept batch changed since. Replay loads models and
runs a forward and a backward per objective and step; the report's other sections read only records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .document import Block, Heading, Paragraph, Table
from .load import Sweep

# Settings that are arms or seeds, not regimes.
NOT_REGIME = {"objective", "objective_params", "correction", "seed", "name", "output_dir", "tracking"}


def replay_blocks(sweep: Sweep) -> list[Block]:
    """The section's blocks, or none when no run of the sweep kept batches."""
    from ..batches import kept_steps

    runs = [sweep.folder / rel for rel in sorted(set(sweep.runs.get("run", [])))
            if isinstance(rel, str) and kept_steps(sweep.folder / rel)]
    if not runs:
        return []
    configs = {run: json.loads((run / "config.json").read_text()) for run in runs}
    # pg is always replayed (the norms are relative to it): listed once, first.
    objectives = sorted({c["objective"] for c in configs.values()} - {"pg"})  # TRL's own losses keep no batches
    # One seed is enough to see where the gradients part ways, and every seed would multiply the build's time.
    first = min(c["seed"] for c in configs.values())
    configs = {run: c for run, c in configs.items() if c["seed"] == first}
    blocks: list[Block] = [
        Heading("The same batches, every objective"),
        Paragraph(f"{len(runs)} run(s) kept their batches and weights; the {len(configs)} of seed {first} (every arm's "
                  "first seed) are replayed here: each kept step for `pg` and "
                  f"{', '.join(f'`{o}`' for o in objectives)} from the same state (one forward, one backward per "
                  "objective; `workbench replay` for every objective and figures). Replay measures one update from "
                  "the same weights and tokens: whether and where the objectives push differently, not where "
                  "training under each would have gone."),
    ]
    regimes = _regimes(configs)
    for label, members in regimes.items():
        summary = _replay(sweep.folder, members, configs, objectives)
        if len(regimes) > 1:
            blocks.append(Heading(f"Regime: {label}", 3))
        blocks.extend(_tables(summary))
    return blocks


def _regimes(configs: dict[Path, dict[str, Any]]) -> dict[str, list[Path]]:
    keys = sorted({k for c in configs.values() for k in c} - NOT_REGIME)
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1]
    regimes: dict[str, list[Path]] = {}
    for run, config in configs.items():
        label = ", ".join(f"{k}={config.get(k)}" for k in varying) or "all runs"
        regimes.setdefault(label, []).append(run)
    return dict(sorted(regimes.items()))


def _replay(folder: Path, runs: Sequence[Path], configs: dict[Path, dict[str, Any]],
            objectives: list[str]) -> dict[str, Any]:
    """The regime's summary: the one saved in the sweep's folder while current, else replayed and saved there."""
    from ..batches import kept_steps
    from ..config import RunConfig
    from ..replay import Policy, parse_objectives, replay_inputs, replay_run, save_summary, saved_summary, summarise

    names = parse_objectives(",".join(objectives) or "pg")
    inputs = replay_inputs({run: kept_steps(run) for run in runs}, names)
    # Beside the runs, not in the report's --out: a summary belongs to the runs it pools, and every build reuses
    # it, into whatever folder. Named by the runs, so a stale one is overwritten rather than left beside.
    runs_hash = hashlib.sha256("\n".join(sorted(str(run.relative_to(folder)) for run in runs)).encode()).hexdigest()
    path = folder / "replay" / f"regime-{runs_hash[:12]}.json"
    summary = saved_summary(path, inputs)
    if summary is not None:
        return summary
    policies: dict[str, Policy] = {}
    replays = []
    for run in runs:
        config = configs[run]
        # The kept weights replace every trainable parameter: runs of one model, task and forward share a policy.
        key = json.dumps({k: config.get(k) for k in ("model", "lora", "task", "task_params", "temperature",
                                                     "train_precision")}, sort_keys=True)
        if key not in policies:
            policies[key] = Policy(RunConfig.parse(config, source=str(run / "config.json")))
        replays.append(replay_run(run, names, policy=policies[key]))
    summary = summarise(replays)
    try:
        save_summary(path, summary, inputs)
    except OSError:  # a read-only store still gets its report, replayed at every build
        pass
    return summary


def _tables(summary: dict[str, Any]) -> list[Block]:
    from ..replay import MU_BINS, cosine_table

    header, rows = cosine_table(summary)
    by = {(r["objective"], r["mu"], r["advantage"]): r for r in summary["tokens"]}
    token_rows = []
    for label in summary["objectives"]:
        cells = [label]
        for bin_name, _, _ in MU_BINS:
            r = by.get((label, bin_name, "all"))
            cells.append("–" if r is None or not r["tokens"] else
                         " / ".join(f"{100 * r[c]:.0f}%" for c in ("frac_changed", "frac_flipped", "frac_zero")))
        token_rows.append(tuple(cells))
    tokens = {bin_name: max((r["tokens"] for r in summary["tokens"] if r["mu"] == bin_name and r["advantage"] == "all"),
                            default=0) for bin_name, _, _ in MU_BINS}
    blocks: list[Block] = [
        Paragraph(f"Cosine of the parameter gradients, mean over {summary['steps']} kept step(s) of "
                  f"{len(summary['runs'])} run(s), and each gradient's norm relative to `pg`:"),
        Table(tuple(header), tuple(tuple(r) for r in rows)),
        Paragraph("Tokens whose gradient weight g/A differs from the on-policy weight 1 by more than 10% / flips sign "
                  "/ is zero, by μ (tokens with A ≠ 0, pooled over steps and seeds: "
                  + ", ".join(f"{k.replace('mu', 'μ')} {n}" for k, n in tokens.items()) + "):"),
        Table(("objective", *(b.replace("mu", "μ") for b, _, _ in MU_BINS)), tuple(token_rows)),
    ]
    if summary["zero_gradient_steps"]:
        blocks.append(Paragraph("Zero gradient at some steps (left out of their cosines): " + ", ".join(
            f"`{k}` {n}/{summary['steps']}" for k, n in summary["zero_gradient_steps"].items()) + "."))
    return blocks
