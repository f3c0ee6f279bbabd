"""A sweep → tidy pandas tables, read only through the sweep store contract and the run records.

``steps`` has one row per run per logged step (columns: every parameter, objective, arm, trial,
seed, run, status, step, wall_time and every metric); ``runs`` one row per run with its final value;
``trials`` one row per Optuna trial; ``histograms`` one row per logged histogram. An *arm* is one
configuration (objective + parameters): statistics pool the seeds of an arm, whichever trials ran it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from pydantic import ValidationError

from ..config import ConfigError, format_validation_error
from ..sweeps.looks import GATE, LOOK, is_gate
from ..sweeps.plan import point_key
from ..sweeps.space import OBJECTIVE, grid_points, split
from ..sweeps.spec import SweepSpec
from ..sweeps.store import host_name, open_study, read_meta, sweep_folder
from ..tracking import STATUS_FINISHED, RunRecord, load_run

SYMBOLS = {"delta": "δ", "epsilon": "ε", "epsilon_low": "ε_lo", "epsilon_high": "ε_hi", "beta": "β"}
RUN_KEYS = ("objective", "arm", "trial", "seed", "run")


@dataclass
class Sweep:
    name: str
    folder: Path
    meta: dict[str, Any]
    spec: SweepSpec  # the sweep file as validated at launch (sweep.json)
    metric: str
    study: optuna.Study
    params: list[str]  # parameter columns, in the order they first appear
    trials: pd.DataFrame
    runs: pd.DataFrame
    steps: pd.DataFrame
    histograms: pd.DataFrame
    next_look: int | None = None  # the look a gate waits to open (sweeps.looks): the looks before it have ended

    @property
    def finished(self) -> pd.DataFrame:
        """Runs that finished with a value: the only ones statistics use."""
        return self.runs[(self.runs["status"] == STATUS_FINISHED) & self.runs["final"].notna()]

    @property
    def still_running(self) -> bool:
        """Trials running or queued (WAITING: budget not spent yet), a look still to open, or runs not closed."""
        return bool(self.trials["state"].isin(("RUNNING", "WAITING")).any() or self.next_look is not None
                    or (self.runs["status"] == "running").any())


def load_sweep(name: str, root: str | Path | None = None, storage: str | None = None) -> Sweep:
    """Read a sweep (finished, still running or partly failed); a missing name raises ConfigError."""
    meta = read_meta(name, root)
    folder = sweep_folder(name, root)
    study = open_study(name, root, storage)
    try:
        spec = SweepSpec.model_validate(meta.get("spec"))
    except ValidationError as err:
        raise ConfigError(f"{folder / 'sweep.json'}: spec: {format_validation_error(err)}") from None
    metric = spec.metric
    trials = study.get_trials(deepcopy=False)
    gates = [t.user_attrs[GATE] for t in trials if is_gate(t) and t.state.name in ("WAITING", "RUNNING")]
    trials = [t for t in trials if not is_gate(t)]  # a look's gate has no runs
    # A FAIL trial that another trial re-ran was interrupted (its process died), not a failed configuration.
    retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
    trials = [t for t in trials if not (t.state == optuna.trial.TrialState.FAIL and t.number in retried)]
    attrs = [(t.user_attrs.get("objective", "?"), t.user_attrs.get("objective_params") or {},
              t.user_attrs.get("run_fields") or {}) for t in trials]
    params, settings, labels = arm_labels(attrs, spec.base.get("correction"))

    trial_rows, run_rows, step_rows, hist_rows = [], [], [], []
    for trial, (objective, _, _), setting, arm in zip(trials, attrs, settings, labels):
        base = {"objective": objective, "arm": arm, "trial": trial.number, "point": point_key(trial.params),
                "look": trial.user_attrs.get(LOOK, 1), **setting}
        trial_rows.append({**base, "state": trial.state.name, "value": trial.value,
                           "failure": trial.user_attrs.get("failure"), "seeds": len(trial.user_attrs.get("seeds", []))})
        for seed, path in _run_dirs(folder, trial):
            run = {**base, "seed": seed, "run": str(path.relative_to(folder))}
            record, unusable = _read_run(path, trial, seed)
            if record is None:
                run_rows.extend([{**run, **unusable}] if unusable else [])
                continue
            facts = _run_facts(record, metric)
            run_rows.append({**run, **facts, "flags": facts["flags"] + _damage(record)})
            step_rows.extend({**run, "status": record.summary.get("status"), **row} for row in record.scalars)
            hist_rows.extend({**run, **h} for h in record.histograms)
    return Sweep(name, folder, meta, spec, metric, study, params, _frame(trial_rows, ["trial", "state"]),
                 _frame(run_rows, [*RUN_KEYS, "status", "final"]), _frame(step_rows, [*RUN_KEYS, "step"]),
                 _frame(hist_rows, [*RUN_KEYS, "step", "name", "edges", "counts"]), min(gates, default=None))


def arm_labels(arms: list[tuple[str, dict[str, Any], dict[str, Any]]], base_correction: Any = None
               ) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(parameter columns, each arm's setting, each arm's label) of arms given as (objective, objective parameters,
    run fields): the trials of a sweep, or the grid points of its file (:func:`point_labels`)."""
    settings = [_settings(objective_params, run_fields) for _, objective_params, run_fields in arms]
    fields = {k for _, _, run_fields in arms for k in run_fields}
    names = list(dict.fromkeys(k for s in settings for k in s))
    params = [k for k in names if k not in fields] + [k for k in names if k in fields]  # objective's first
    varying = [p for p in params if len({hashable(s.get(p)) for s in settings}) > 1]
    labels = [arm_label(objective, setting, varying, setting.get("correction", base_correction))
              for (objective, _, _), setting in zip(arms, settings)]
    return params, settings, labels


def point_labels(spec: SweepSpec) -> dict[str, str]:
    """Grid point key (sweeps.plan.point_key) → the arm label its trials get: to read a committed seeds.csv."""
    points = grid_points(spec)
    arms = [(p.objective, p.objective_params, p.run_fields) for p in (split(point[OBJECTIVE], point) for point in points)]
    return dict(zip(map(point_key, points), arm_labels(arms, spec.base.get("correction"))[2]))


def _settings(objective_params: dict[str, Any], run_fields: dict[str, Any]) -> dict[str, Any]:
    """An arm's parameters: objective parameters, then other RunConfig fields (the objective's name gets an
    ``objective.`` prefix only where both set the same name, e.g. β)."""
    out = {(f"objective.{k}" if k in run_fields else k): v for k, v in objective_params.items()}
    out.update(run_fields)
    return out


def hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def arm_label(objective: str, setting: dict[str, Any], varying: list[str], correction: Any = None) -> str:
    """'drpo (δ=0.15, advantage_weight=abs)': the objective and the swept parameters that set this arm apart;
    an arm with a mismatch correction names it: 'grpo + tis(token, 2.0)'."""
    shown = [f"{SYMBOLS.get(k, k)}={format_setting(setting[k])}" for k in varying if k in setting and k != "correction"]
    name = objective if correction is None else f"{objective} + {correction_label(correction)}"
    return f"{name} ({', '.join(shown)})" if shown else name


def objective_rows(runs: pd.DataFrame) -> pd.Series:
    """Each run's objective, named with its correction when the sweep varies it ('grpo + tis(token, 2.0)'): the
    rows of the per-objective figures, so that arms with and without a correction are not pooled."""
    if "correction" not in runs or runs["correction"].map(hashable).nunique(dropna=False) < 2:
        return runs["objective"]
    return pd.Series([objective if correction is None or correction != correction  # NaN: not set
                      else f"{objective} + {correction_label(correction)}"
                      for objective, correction in zip(runs["objective"], runs["correction"])], index=runs.index)


def correction_label(setting: Any) -> str:
    """'tis(token, 2.0)' for a run config's ``correction:`` (a name, a preset or a mapping); as given if unknown."""
    from ..objectives import correction_from_setting

    try:
        return correction_from_setting(setting).label
    except (ValueError, TypeError, AttributeError):
        return str(setting)


def format_setting(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_dirs(folder: Path, trial: optuna.trial.FrozenTrial) -> list[tuple[int, Path]]:
    """seed → run folder from the trial's ``run_dirs``; a trial still starting may not have written them
    yet, so fall back to the contract's ``trials/<n>/seed-<s>/`` layout."""
    run_dirs = trial.user_attrs.get("run_dirs") or {}
    if run_dirs:
        return sorted((int(seed), folder / rel) for seed, rel in run_dirs.items())
    found = (folder / "trials" / str(trial.number)).glob("seed-*")
    return sorted((int(p.name.removeprefix("seed-")), p) for p in found if p.name.removeprefix("seed-").isdigit())


def _read_run(path: Path, trial: optuna.trial.FrozenTrial,
              seed: int) -> tuple[RunRecord | None, dict[str, Any] | None]:
    """The run's record; else the row of a run the report cannot use, saying why (flagged, never dropped
    silently); (None, None) for a seed of a running trial that has not started yet, or for an unfinished seed of
    a failed trial that never made its folder (bad config, infrastructure: the trial's failure says why)."""
    done = trial.user_attrs.get("seed_values") or {}
    started = trial.state != optuna.trial.TrialState.RUNNING or str(seed) in done
    if not path.is_dir():
        if not started or (trial.state == optuna.trial.TrialState.FAIL and str(seed) not in done):
            return None, None
        host = trial.user_attrs.get("host")
        where = (f"ran on host {host}: copy its trials/{trial.number}/ folder here" if host and host != host_name()
                 else "run folder missing")
        return None, _unusable("missing", where)
    if not started and not (path / "summary.json").is_file():
        return None, None
    for name in ("summary.json", "config.json"):
        try:
            json.loads((path / name).read_text())
        except FileNotFoundError:
            return None, _unusable("unreadable", f"{name} missing")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, _unusable("unreadable", f"{name} is not valid JSON (cut short?)")
    try:
        record = load_run(path)
    except UnicodeDecodeError as err:
        return None, _unusable("unreadable", f"a file of the run is not UTF-8 text (byte {err.start})")
    problem = shape_problem(record)
    return (None, _unusable("unreadable", problem)) if problem else (record, None)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def shape_problem(record: RunRecord) -> str | None:
    """Where the record's valid JSON has the wrong shape for a report (file, line, field and what was expected),
    else None. Checked before anything reads it, so a hand-edited or foreign file flags its run instead of
    aborting the report."""
    if not isinstance(record.config, dict):
        return f"config.json is a {type(record.config).__name__}, not a JSON object"
    if not isinstance(record.summary, dict):
        return f"summary.json is a {type(record.summary).__name__}, not a JSON object"
    for key in ("gradient_accumulation_steps", "steps_per_generation", "num_iterations"):
        if record.config.get(key) is not None and not _integer(record.config[key]):
            return f"config.json: {key} is {record.config[key]!r}, not an integer"
    summary = record.summary
    if not isinstance(summary.get("status"), str):
        return f"summary.json: status is {summary.get('status')!r}, not a string"
    if not isinstance(summary.get("flags") or [], list):
        return f"summary.json: flags is {summary['flags']!r}, not a list"
    for key in ("eval", "base_eval"):
        block = summary.get(key)
        if block is not None and not isinstance(block, dict):
            return f"summary.json: {key} is {block!r}, not an object"
        wrong = next((k for k, v in (block or {}).items() if v is not None and not _number(v)), None)
        if wrong is not None:
            return f"summary.json: {key}.{wrong} is {block[wrong]!r}, not a number"
    if summary.get("wall_time") is not None and not _number(summary["wall_time"]):
        return f"summary.json: wall_time is {summary['wall_time']!r}, not a number"
    for line, row in enumerate(record.scalars, 1):
        if not isinstance(row, dict):
            return f"scalars.jsonl line {line} is {json.dumps(row)[:40]}, not a JSON object"
        if not _integer(row.get("step")):
            return f"scalars.jsonl line {line}: step is {row.get('step')!r}, not an integer"
        wrong = next((k for k, v in row.items() if v is not None and not _number(v)), None)
        if wrong is not None:
            return f"scalars.jsonl line {line}: {wrong} is {row[wrong]!r}, not a number"
    for line, row in enumerate(record.histograms, 1):
        problem = _histogram_problem(row)
        if problem:
            return f"histograms.jsonl line {line}: {problem}"
    return None


def _histogram_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"{json.dumps(row)[:40]} is not a JSON object"
    if not _integer(row.get("step")) or not isinstance(row.get("name"), str):
        return "step must be an integer and name a string"
    edges, counts = row.get("edges"), row.get("counts")
    if not isinstance(edges, list) or not all(_number(e) and np.isfinite(e) for e in edges):
        return "edges must be a list of finite numbers"
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        return "edges must be at least two, strictly increasing"
    if not isinstance(counts, list) or not all(_integer(c) and c >= 0 for c in counts):
        return "counts must be a list of non-negative integers"
    if len(edges) != len(counts) + 1:
        return f"{len(edges)} edges for {len(counts)} counts (expected one more edge than counts)"
    return None


def _unusable(status: str, reason: str) -> dict[str, Any]:
    return {"status": status, "flags": [reason], "failure": reason, "final": np.nan}


def _damage(record: RunRecord) -> list[str]:
    """Lines of scalars.jsonl / histograms.jsonl the record could not read (a cut or garbled line)."""
    notes = []
    for name, rows in (("scalars.jsonl", record.scalars), ("histograms.jsonl", record.histograms)):
        file = record.path / name
        lines = len(file.read_bytes().splitlines()) if file.is_file() else 0
        if len(rows) < lines:
            notes.append(f"{name} unreadable from line {len(rows) + 1} of {lines}")
    return notes


def failed_to_learn(final: float | None, base: float | None) -> bool:
    """Stability: a run ended below its own untrained policy's metric (no base or no final: not measured, not
    flagged)."""
    return final is not None and base is not None and final == final and base == base and float(final) < float(base)


def _run_facts(record: RunRecord, metric: str) -> dict[str, Any]:
    summary = record.summary
    final = (summary.get("eval") or {}).get(metric)
    last = record.scalars[-1] if record.scalars else {}
    return {
        "status": summary.get("status"),
        "flags": list(summary.get("flags") or []),
        "failure": summary.get("failure"),
        "final": float(final) if final is not None and summary.get("status") == STATUS_FINISHED else np.nan,
        "base": (base := (summary.get("base_eval") or {}).get(metric, np.nan)),
        "failed_to_learn": failed_to_learn(final, base),
        "last_step": int(last.get("step", 0)),
        "wall_time": summary.get("wall_time", last.get("wall_time", np.nan)),
        "updates_per_batch": updates_per_batch(record.config),
        # Stability (issue 16): None = never collapsed; runs recorded before summaries held it say so.
        "collapse_step": summary.get("collapse_step"),
        "stability_recorded": "collapse_step" in summary,
    }


def updates_per_batch(config: dict[str, Any]) -> int:
    """Optimizer steps served by one generated batch (TRL regenerates every steps_per_generation ×
    num_iterations micro-batches, an optimizer step takes gradient_accumulation_steps of them); 1 where
    the batches do not line up with optimizer steps."""
    accumulation = int(config.get("gradient_accumulation_steps") or 1)
    micro = int(config.get("steps_per_generation") or accumulation) * int(config.get("num_iterations") or 1)
    return micro // accumulation if micro % accumulation == 0 else 1


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A frame that keeps its key columns even when empty (a sweep whose first trial has not started)."""
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    if "failure" in frame:  # pandas reads a missing string as NaN, which is truthy
        frame["failure"] = frame["failure"].fillna("")
    return frame


def seed_scores(runs: pd.DataFrame, by: str = "arm") -> dict[str, np.ndarray]:
    """{arm: final values of its finished seeds, ordered by seed} (the statistics' input)."""
    return {key: group.sort_values("seed")["final"].to_numpy(dtype=np.float64)
            for key, group in runs.groupby(by, sort=True)}
