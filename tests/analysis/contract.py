"""Sweeps written exactly in the layout of workbench/sweeps/store.py, with real Optuna storage and real run folders.

What the sweep engine writes, written here through Optuna's own API so the report can be tested
(and benchmarked) without the engine: ``sweep.json``, the journal study named after the sweep,
``trials/<n>/seed-<s>/`` run folders and the trial user attributes the contract lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from workbench.sweeps.store import JOURNAL, META, make_storage, sweep_folder
from workbench.tracking import load_run, write_json_atomic


def create_sweep(root: Path, name: str, spec: dict[str, Any] | None = None) -> optuna.Study:
    folder = sweep_folder(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    # What a launch validates (SweepSpec): a hand-made sweep whose grid is not its trials' is read without a plan.
    spec = {"name": name, "metric": "eval/accuracy", "objectives": ["grpo"], "seeds": [0], **(spec or {})}
    write_json_atomic(folder / META, {"name": name, "storage": JOURNAL, "spec": spec, "spec_hash": "test"})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=make_storage(folder, None), direction="maximize")


def run_dir(root: Path, study: optuna.Study, seed: int) -> Path:
    """The folder of ``seed`` in the trial that :func:`add_trial` will add next."""
    return sweep_folder(study.study_name, root) / "trials" / str(len(study.trials)) / f"seed-{seed}"


def add_trial(root: Path, study: optuna.Study, objective: str, seeds: list[int],
              distributions: dict[str, BaseDistribution], objective_params: dict[str, Any] | None = None,
              run_fields: dict[str, Any] | None = None, state: TrialState = TrialState.COMPLETE,
              failure: str | None = None) -> optuna.trial.FrozenTrial:
    """Record the trial whose runs sit in :func:`run_dir`; its value is the mean over finished seeds."""
    folder = sweep_folder(study.study_name, root)
    number = len(study.trials)
    objective_params, run_fields = objective_params or {}, run_fields or {}
    run_dirs = {str(s): f"trials/{number}/seed-{s}" for s in seeds}
    seed_values = {}
    for seed, rel in run_dirs.items():
        if (folder / rel / "summary.json").is_file():
            summary = load_run(folder / rel).summary
            if summary["status"] == "finished":
                seed_values[seed] = summary["eval"]["eval/accuracy"]
    settings = {"objective": objective, **objective_params, **run_fields}
    params = {k: v for k, v in settings.items() if k in distributions}
    value = float(np.mean(list(seed_values.values()))) if state == TrialState.COMPLETE else None
    attrs = {"objective": objective, "objective_params": objective_params, "run_fields": run_fields,
             "seeds": seeds, "run_dirs": run_dirs, "seed_values": seed_values, "aggregate": "mean"}
    if failure:
        attrs["failure"] = failure
    trial = optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params},
                                      value=value, user_attrs=attrs, state=state)
    study.add_trial(trial)
    return study.trials[-1]


def objectives_distribution(names: list[str]) -> dict[str, BaseDistribution]:
    return {"objective": CategoricalDistribution(names)}


# ---- synthetic sweeps: real run records (RunRecorder) and a real study, numbers drawn from a model ----------

HISTOGRAM_NAMES = ("grad_weight/all", "grad_weight/pos_adv", "grad_weight/neg_adv", "grad_weight/normalised",
                   "shift/signed", "entropy/tokens")


def write_synthetic_run(path: Path, config: dict[str, Any], skill: float, rng: np.random.Generator, steps: int,
                        eval_every: int = 10, histogram_every: int = 5, status: str = "finished",
                        flags: tuple[str, ...] = (), rare: float | None = 0.3) -> None:
    """A run record whose accuracy climbs towards ``skill`` while entropy falls, through the real writer.

    ``rare``: about this fraction of sampled tokens has μ < 0.1 (the token profile, as the trainer logs it);
    None writes a run from before the profile was logged."""
    from workbench.diagnostics import LOG10_PROB_RANGE
    from workbench.tracking import RunRecorder

    recorder = RunRecorder(path, config)
    base = {"eval/accuracy": 0.2, "eval/greedy_accuracy": 0.25}
    recorder.log_scalars(0, base)
    last = base
    for step in range(1, steps + 1):
        progress = 1 - np.exp(-step / (steps / 3))
        row = {"reward/mean": 0.2 + (skill - 0.2) * progress + rng.normal(0, 0.02),
               "entropy/mean": 1.5 * (1 - 0.8 * progress) + rng.normal(0, 0.01),
               "tv/mean": 0.01 + 0.005 * rng.random(), "tv/max": 0.2 + 0.1 * rng.random(), "ratio/mean": 1.0,
               "frac/off_policy": 0.9, "grad_norm": 0.5 + 0.1 * rng.random()}
        if rare is not None:  # log10 μ exponential below 0, scaled so that P(μ < 0.1) = rare
            log10_mu = np.maximum(-rng.exponential(-1 / np.log(rare), 400), LOG10_PROB_RANGE[0])
            row.update({"behaviour/frac_rare": float(np.mean(log10_mu < -1)),
                        "behaviour/frac_very_rare": float(np.mean(log10_mu < -2)),
                        "behaviour/median_prob": float(10 ** np.median(log10_mu))})
        if step % eval_every == 0 or step == steps:
            last = {"eval/accuracy": float(np.clip(0.2 + (skill - 0.2) * progress + rng.normal(0, 0.03), 0, 1)),
                    "eval/greedy_accuracy": float(np.clip(skill + rng.normal(0, 0.03), 0, 1))}
            row.update(last)
        recorder.log_scalars(step, row)
        if step % histogram_every == 0:
            weights = rng.normal(1.0, 0.3 * (1 - 0.5 * progress), 400)
            recorder.log_histograms(step, {name: weights for name in HISTOGRAM_NAMES}, bins=41)
            if rare is not None:
                recorder.log_histograms(step, {"behaviour/log10_prob": log10_mu}, bins=24,
                                        ranges={"behaviour/log10_prob": LOG10_PROB_RANGE})
        if status != "finished" and step >= steps // 2:
            break
    for flag in flags:
        recorder.flag(flag)
    recorder.finish(status, base_eval=base, eval=last)


def synthetic_sweep(root: Path, name: str, arms: list[tuple[str, dict[str, Any], dict[str, Any]]], seeds: list[int],
                    steps: int, distributions: dict[str, BaseDistribution], rng: np.random.Generator,
                    skill: Any = None, rare: float | None = 0.3, spec: dict[str, Any] | None = None) -> optuna.Study:
    """One complete trial per arm (objective, objective_params, run_fields), each seed a run record."""
    from workbench.config import RunConfig

    study = create_sweep(root, name, spec)
    for objective, objective_params, run_fields in arms:
        for seed in seeds:
            config = RunConfig.parse({"objective": objective, "objective_params": objective_params, **run_fields,
                                      "seed": seed, "max_steps": steps}).model_dump(mode="json")
            level = skill(objective, objective_params, run_fields) if skill else 0.5
            write_synthetic_run(run_dir(root, study, seed), config, level + rng.normal(0, 0.02), rng, steps,
                                rare=rare)
        add_trial(root, study, objective, seeds, distributions, objective_params, run_fields)
    return study
