"""What a sweep's study says: counts for the progress display, the trial table, the best per objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table


@dataclass
class Tally:
    complete: int = 0
    running: int = 0
    failed: int = 0
    pruned: int = 0
    waiting: int = 0
    interrupted: int = 0  # failed because their process died, and re-queued: not a failed configuration
    best: FrozenTrial | None = None

    @property
    def finished(self) -> int:
        return self.complete + self.failed + self.pruned

    def line(self) -> str:
        best = f"best {format_value(self.best.value)} ({describe(self.best)})" if self.best else "best —"
        return (f"{self.complete} complete · {self.running} running · {self.failed} failed · "
                f"{self.pruned} pruned · {self.waiting} waiting · {best}")


def interrupted_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Trials failed by a dead process and re-queued (RetryHeartbeatStaleTrialCallback's retry_history)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def tally(trials: list[FrozenTrial]) -> Tally:
    counts, interrupted = Tally(), interrupted_numbers(trials)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            counts.complete += 1
            if counts.best is None or t.value > counts.best.value:
                counts.best = t
        elif t.state == TrialState.FAIL:
            if t.number in interrupted:
                counts.interrupted += 1
            else:
                counts.failed += 1
        elif t.state == TrialState.RUNNING:
            counts.running += 1
        elif t.state == TrialState.PRUNED:
            counts.pruned += 1
        elif t.state == TrialState.WAITING:
            counts.waiting += 1
    return counts


def describe(trial: FrozenTrial) -> str:
    """'drpo delta=0.15 rollout_precision=bf16' from the trial's attributes (or its fixed params if not run)."""
    attrs = trial.user_attrs
    if "objective" not in attrs:
        return " ".join(f"{k}={v}" for k, v in (trial.params or trial.system_attrs.get("fixed_params", {})).items())
    params = {**attrs.get("objective_params", {}), **attrs.get("run_fields", {})}
    # An unset value (correction: null, the arm without one) sets nothing apart: it is left out.
    return " ".join([attrs["objective"], *(f"{k}={_fmt(v)}" for k, v in params.items() if v is not None)])


def format_value(value: float | None) -> str:
    """A trial or seed value, 4 decimals. Rounded to 12 first, so that one value reached two ways (a seed's
    0.26875, a mean's 0.26875000000000004) does not print as 0.2687 here and 0.2688 there."""
    return "" if value is None else f"{round(value, 12):.4f}"


def _fmt(value: Any) -> str:
    """A parameter (4 significant digits: learning rates are small)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(study: optuna.Study) -> Table:
    trials = study.get_trials(deepcopy=False)
    interrupted = interrupted_numbers(trials)
    table = Table(title=f"sweep {study.study_name}")
    for column in ("trial", "parameters", "value", "state", "seeds done", "note"):
        table.add_column(column, justify="right" if column in ("trial", "value") else "left")
    for t in trials:
        seeds = t.user_attrs.get("seeds", [])
        state = "interrupted" if t.number in interrupted else t.state.name.lower()
        note = t.user_attrs.get("failure", "")
        if "retry_of" in t.user_attrs:
            note = f"re-run of trial {t.user_attrs['retry_of']}"
        table.add_row(str(t.number), describe(t), format_value(t.value), state,
                      f"{len(t.user_attrs.get('seed_values', {}))}/{len(seeds)}" if seeds else "", note)
    return table


def best_table(study: optuna.Study) -> Table:
    """The best complete trial of each objective."""
    best: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        objective = t.user_attrs.get("objective", "?")
        if objective not in best or t.value > best[objective].value:
            best[objective] = t
    table = Table(title="best configuration per objective")
    for column in ("objective", "value", "trial", "parameters", "seed values"):
        table.add_column(column)
    for objective, t in sorted(best.items(), key=lambda item: -item[1].value):
        seed_values = ", ".join(f"{s}: {format_value(v)}" for s, v in t.user_attrs.get("seed_values", {}).items())
        table.add_row(objective, format_value(t.value), str(t.number), describe(t), seed_values)
    return table
