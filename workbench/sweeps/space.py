"""Search spaces: one dimension per parameter, objective parameters scoped to their objective.

A dimension is either ``{values: [...]}`` (a categorical, or the axis of a grid) or a range
``{low, high, log, int}`` for TPE/GP/random. In Optuna a RunConfig field keeps its name
(``learning_rate``), an objective parameter is prefixed by its objective (``drpo.delta``) so that
two objectives' ``delta`` never share a distribution, and the objective itself is the parameter
``objective``. A trial only suggests the parameters of the objective it draws, so a grid does not run
``drpo`` with ``epsilon_low`` and TPE treats the scoped parameters as conditional.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

OBJECTIVE = "objective"
SWEEP_OWNED = ("objective", "objective_params", "seed", "name", "output_dir", "tracking")
# RunConfig fields that objective_space may scope to one objective besides its parameters (grpo: {correction: ...}).
SCOPED_FIELDS = ("correction",)
Choice = bool | int | float | str | None


class Dimension(BaseModel):
    """``values`` (categorical or grid axis), or a ``low``…``high`` range (``log``, ``int``)."""

    model_config = ConfigDict(extra="forbid")

    values: list[Choice] | None = Field(None, description="the values tried (a grid axis)")
    low: float | None = Field(None, description="range start (TPE/GP/random)")
    high: float | None = Field(None, description="range end, included")
    log: bool = Field(False, description="sample the range on a log scale")
    int: bool = Field(False, description="integer range")

    @model_validator(mode="after")
    def _shape(self) -> Dimension:
        if self.values is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either values or low/high, not both")
            if not self.values:
                raise ValueError("values is empty: a grid axis needs at least one value")
            if len(set(map(repr, self.values))) != len(self.values):
                raise ValueError(f"values repeat: {self.values}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a dimension needs values: [...] or both low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range must be above 0 (got low {self.low})")
        return self

    def ends(self) -> list[Choice]:
        """Every value, or the two ends of the range: what validation builds a RunConfig with."""
        if self.values is not None:
            return list(self.values)
        cast = int if self.int else float
        return [cast(self.low), cast(self.high)]

    def suggest(self, trial: optuna.Trial, name: str) -> Choice:
        if self.values is not None:
            return trial.suggest_categorical(name, self.values)
        if self.int:
            return trial.suggest_int(name, math.ceil(self.low), math.floor(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


class Space(Protocol):
    """What a search space is read from (a SweepSpec): the objectives and the dimensions of each."""

    objectives: list[str]
    space: dict[str, Dimension]
    objective_space: dict[str, dict[str, Dimension]]


@dataclass(frozen=True)
class TrialParams:
    """What one trial runs: the objective, its parameters and the other RunConfig fields it sets."""

    objective: str
    objective_params: dict[str, Any]
    run_fields: dict[str, Any]


def param_name(objective: str | None, key: str) -> str:
    return f"{objective}.{key}" if objective else key


def suggest(trial: optuna.Trial, spec: Space) -> TrialParams:
    """Draw (or read back, for an enqueued or retried trial) the trial's parameters."""
    objective = trial.suggest_categorical(OBJECTIVE, spec.objectives)
    params = {param_name(None, k): d.suggest(trial, param_name(None, k)) for k, d in spec.space.items()}
    params |= {param_name(objective, k): d.suggest(trial, param_name(objective, k))
               for k, d in spec.objective_space.get(objective, {}).items()}
    return split(objective, params)


def split(objective: str, params: dict[str, Any]) -> TrialParams:
    prefix = f"{objective}."
    scoped = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    return TrialParams(objective,
                       {k: v for k, v in scoped.items() if k not in SCOPED_FIELDS},
                       {k: v for k, v in params.items() if "." not in k and k != OBJECTIVE}
                       | {k: v for k, v in scoped.items() if k in SCOPED_FIELDS})


def grid_points(spec: Space) -> list[dict[str, Any]]:
    """Every combination of a grid sweep, objective by objective, each exactly once."""
    points = []
    for objective in spec.objectives:
        axes = {param_name(None, k): d.values for k, d in spec.space.items()}
        axes |= {param_name(objective, k): d.values for k, d in spec.objective_space.get(objective, {}).items()}
        for combo in itertools.product(*axes.values()):
            points.append({OBJECTIVE: objective, **dict(zip(axes, combo))})
    return points
