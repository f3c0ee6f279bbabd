"""Seeds until resolved: a sweep with ``seeds: {initial, step, max, until: resolved}`` runs in looks.

Look 1 is the grid with the first ``initial`` seeds. Each later look k is opened by a *gate*: a trial with no
parameters, enqueued with the look before it, that a worker may claim only once every other trial has ended
(sweeps.study.claim). Its holder tests every declared comparison on the seeds so far (workbench.verdicts.decide,
the report's own computation), enqueues one trial with the next ``step`` seeds for each arm still unresolved and
for the baselines it is compared with, enqueues the gate of look k + 1, and ends as PRUNED (it has no value).

Claiming a gate is Optuna's atomic WAITING → RUNNING transition, so two launchers, on one machine or on many
sharing a database, never open a look twice; a holder that dies is re-queued like any trial (its attributes
kept), and its successor enqueues only the trials of the look that are not there yet. A killed launch therefore
resumes at the look it stopped in.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from .. import verdicts
from .plan import plan, point_key
from .space import grid_points
from .spec import RelativeMargin, SweepSpec

GATE, LOOK, SEEDS, POINT = "gate", "look", "seeds", "point"
# What a trial's re-run keeps of its attributes: what it is (everything else starts clean).
PLANNED = (GATE, LOOK, SEEDS, POINT)


def first_look(spec: SweepSpec) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(parameters, user attributes) of the trials a new sweep enqueues: the grid with its first seeds, and for a
    sweep in looks the gate of look 2."""
    if not spec.sequential:
        return [(point, {}) for point in grid_points(spec)]
    seeds = list(spec.seed_order[:spec.look_sizes[0]])
    trials = [(point, {LOOK: 1, SEEDS: seeds, POINT: point_key(point)}) for point in grid_points(spec)]
    return trials + ([({}, {GATE: 2})] if len(spec.look_sizes) > 1 else [])


def is_gate(trial: optuna.trial.FrozenTrial | optuna.Trial) -> bool:
    return GATE in trial.user_attrs


def gate_ready(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """A gate opens its look once every run of the looks before it has ended (none waiting or running)."""
    return not any(t.state in (TrialState.WAITING, TrialState.RUNNING) and not is_gate(t) for t in trials)


def verdict_plan(spec: SweepSpec) -> verdicts.Plan:
    margin = spec.equivalence_margin
    relative = isinstance(margin, RelativeMargin)
    return verdicts.Plan(spec.seed_order, spec.look_sizes, margin.relative if relative else margin, relative,
                         spec.multiplicity, {name: f.max for name, f in spec.families.items() if f.max is not None})


def seed_values(trials: list[optuna.trial.FrozenTrial]) -> dict[str, dict[int, float]]:
    """Grid point → seed → final value, over every trial that ran the point (whatever its look or state)."""
    values: dict[str, dict[int, float]] = {}
    for t in trials:
        if not is_gate(t) and t.params:
            values.setdefault(point_key(t.params), {}).update(
                {int(s): float(v) for s, v in (t.user_attrs.get("seed_values") or {}).items()})
    return values


def pairs(spec: SweepSpec, values: dict[str, dict[int, float]]) -> list[verdicts.Pair]:
    """The declared comparisons (sweeps.plan) with their seed values so far."""
    return [verdicts.Pair(f"{p.arm} vs {p.baseline}", p.family, values.get(p.arm, {}), values.get(p.baseline, {}))
            for p in plan(spec) or []]


def open_look(study: optuna.Study, trial: optuna.Trial, spec: SweepSpec) -> None:
    """The gate's work (see the module docstring): decide, enqueue what the look adds, end the gate."""
    look = int(trial.user_attrs[GATE])
    going = enqueue_look(study, spec, look)
    trial.set_user_attr("arms", going)
    trial.set_user_attr(SEEDS, list(spec.seed_order[spec.look_sizes[look - 2]:spec.look_sizes[look - 1]]))
    study.tell(trial, state=TrialState.PRUNED)


def enqueue_look(study: optuna.Study, spec: SweepSpec, look: int) -> list[str]:
    """Enqueue look ``look``'s trials for the arms whose comparisons continue after the looks before it, and the
    gate of the look after; only what is not there yet, so a second call (the holder died) adds nothing. The arms
    (grid point keys) that go on."""
    trials = study.get_trials(deepcopy=False)
    decisions = verdicts.decide(pairs(spec, seed_values(trials)), verdict_plan(spec), complete=look - 1)
    going = {key for d in decisions.values() if d.stop == "continues" for key in d.key.split(" vs ")}
    sizes = spec.look_sizes
    seeds = list(spec.seed_order[sizes[look - 2]:sizes[look - 1]])
    there = {t.user_attrs.get(POINT) for t in trials if t.user_attrs.get(LOOK) == look}
    for point in grid_points(spec):
        key = point_key(point)
        if key in going and key not in there:
            study.enqueue_trial(point, user_attrs={LOOK: look, SEEDS: seeds, POINT: key})
    gates = {t.user_attrs.get(GATE) for t in trials if is_gate(t)}
    if going and look < len(sizes) and look + 1 not in gates:
        study.enqueue_trial({}, user_attrs={GATE: look + 1})
    return sorted(going)
