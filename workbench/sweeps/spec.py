"""SweepSpec: a sweep file, validated at the boundary, with YAML line numbers in every error.

    name: drpo_vs_grpo            # the study name and the sweep folder's name
    base: configs/tiny.yaml       # RunConfig: a path (relative to this file) or an inline mapping
    objectives: [grpo, drpo]
    space:                        # RunConfig fields searched for every objective
      rollout_precision: {values: [bf16, fp16]}
    objective_space:              # objective parameters, scoped to the objective they belong to
      drpo:
        delta: {low: 0.05, high: 12.5, log: true}
    seeds: [0, 1, 2]              # every trial runs all of them; its value aggregates over them
    # or seeds added until each declared comparison is resolved (grid sweeps; see workbench.verdicts):
    # seeds: {initial: 10, step: 10, max: 50, until: resolved}
    baseline: grpo                # the arm every other arm is compared with (per setting of space:)
    families:                     # comparisons whose p-values are adjusted together (default: one family)
      primary: {arms: [drpo], settings: all}
      secondary: {arms: rest, max: 10}     # max: this family's seeds (it stops at that look)
    multiplicity: holm            # holm | bh | none
    equivalence_margin: 0.02      # or {relative: 0.1}: ±10% of the baseline's mean
    aggregate: iqm
    sampler: tpe
    pruner: median
    budget: {trials: 20, minutes: 120}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import ConfigError, RunConfig, format_validation_error, load_yaml_mapping
from ..verdicts import MARGIN, MULTIPLICITY
from . import plan
from .space import SCOPED_FIELDS, SWEEP_OWNED, Dimension

# Keys that do not change what a trial computes: they may differ between launches of one sweep.
EXECUTION_KEYS = ("workers", "storage", "budget.minutes")


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trials: int | None = Field(None, ge=1, description="trials in total over every launch and worker")
    minutes: float | None = Field(None, gt=0, description="wall time of one launch: no trial starts after it")


class SeedPlan(BaseModel):
    """Seeds added in looks until every declared comparison is resolved (workbench.verdicts): ``initial`` seeds per
    arm, then ``step`` more for the arms still unresolved (and their baselines), up to ``max``; seeds 0, 1, 2, …"""

    model_config = ConfigDict(extra="forbid")

    initial: int = Field(..., ge=2, description="seeds per arm at the first look")
    step: int = Field(..., ge=1, description="seeds added per look to the arms still unresolved")
    max: int = Field(..., ge=2, description="seeds per arm at the last look")
    until: Literal["resolved"] = Field("resolved", description="when an arm stops getting seeds")

    @model_validator(mode="after")
    def _looks(self) -> SeedPlan:
        if self.max < self.initial or (self.max - self.initial) % self.step:
            raise ValueError(f"max must be initial + a multiple of step (initial {self.initial}, step {self.step}, "
                             f"max {self.max})")
        return self

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(range(self.initial, self.max + 1, self.step))


class Family(BaseModel):
    """Comparisons whose p-values are adjusted together: arms named as the baseline is named ('drpo', 'grpo +
    tis@verl_fp8', 'drpo delta=0.15') or ``rest`` (every comparison no other family takes), in ``all`` settings or
    the listed ones (mappings of space: fields, e.g. {rollout_precision: int4}); ``max``: its seeds cap."""

    model_config = ConfigDict(extra="forbid")

    arms: list[str] | Literal["rest"] = Field(..., description="arm names, or rest")
    settings: Literal["all"] | list[dict[str, Any]] = Field("all", description="all, or settings of space:")
    max: int | None = Field(None, ge=2, description="seeds at which this family stops (a look size)")


class RelativeMargin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relative: float = Field(..., gt=0, description="the margin as a fraction of the baseline's mean")


class SweepSpec(BaseModel):
    """One sweep: what is compared, over which space and seeds, with which search engine and budget."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="study and folder name")
    base: dict[str, Any] = Field(default_factory=dict, description="the RunConfig every trial starts from")
    objectives: list[str] = Field(..., min_length=1, description="objectives compared (registered names)")
    space: dict[str, Dimension] = Field(default_factory=dict, description="RunConfig fields searched")
    objective_space: dict[str, dict[str, Dimension]] = Field(
        default_factory=dict, description="objective parameters searched, per objective")
    seeds: list[int] | SeedPlan = Field(..., description="seeds every trial runs, or {initial, step, max, until}")
    metric: str | None = Field(None, description="final eval metric a seed contributes (maximised); default "
                                                 "eval/p_correct where the task provides it, else eval/accuracy")
    baseline: str | None = Field(None, description="the arm the report compares every other arm with: an "
                                                   "objective with one arm, or one named with its parameters, 'drpo delta=0.15'")
    equivalence_margin: float | RelativeMargin = Field(
        MARGIN, description="a difference within ± this (or {relative: r}: r × the baseline's mean) is 'matches' "
                            "when the equivalence test (TOST) shows it")
    families: dict[str, Family] = Field(default_factory=dict, description="declared families of comparisons")
    multiplicity: Literal[MULTIPLICITY] = Field("holm", description="p-value adjustment within a family")
    aggregate: Literal["mean", "iqm"] = Field("mean", description="seed values → trial value")
    sampler: Literal["grid", "tpe", "gp", "random"] = Field("grid", description="Optuna sampler")
    sampler_seed: int = Field(0, ge=0, description="seed of the TPE/GP/random sampler")
    pruner: Literal["none", "median", "hyperband"] = Field("none", description="acts on the seed-averaged eval curve")
    budget: Budget = Field(default_factory=Budget, description="trials and/or minutes")
    workers: int = Field(1, ge=1, description="worker processes of one launch")
    storage: str | None = Field(None, description="RDB URL (postgresql://...); default: journal file in the folder")

    @field_validator("seeds", mode="before")
    @classmethod
    def _plan(cls, seeds: Any) -> Any:
        """A mapping is a SeedPlan: its own error, not the list's (pydantic would report the union's first member)."""
        if not isinstance(seeds, dict):
            return seeds
        try:
            return SeedPlan.model_validate(seeds)
        except ValidationError as err:
            raise ValueError(format_validation_error(err)) from None

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int] | SeedPlan) -> list[int] | SeedPlan:
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0):
            raise ValueError("seeds must be a non-empty list of distinct non-negative integers, or {initial, step, "
                             "max, until: resolved}")
        return seeds

    @field_validator("equivalence_margin")
    @classmethod
    def _positive(cls, margin: float | RelativeMargin) -> float | RelativeMargin:
        if isinstance(margin, float) and margin <= 0:
            raise ValueError(f"must be positive (or {{relative: r}}), got {margin}")
        return margin

    @field_validator("families", mode="before")
    @classmethod
    def _rest(cls, families: Any) -> Any:
        """``secondary: rest`` is short for ``secondary: {arms: rest}``."""
        if isinstance(families, dict):
            return {k: {"arms": "rest"} if v == "rest" else v for k, v in families.items()}
        return families

    @property
    def seed_order(self) -> tuple[int, ...]:
        """Every seed an arm may run, in the order they are added."""
        return tuple(self.seeds) if isinstance(self.seeds, list) else tuple(range(self.seeds.max))

    @property
    def look_sizes(self) -> tuple[int, ...]:
        """Seeds per arm at each look (one look for a list of seeds)."""
        return (len(self.seeds),) if isinstance(self.seeds, list) else self.seeds.sizes

    @property
    def sequential(self) -> bool:
        return isinstance(self.seeds, SeedPlan)

    @field_validator("objectives")
    @classmethod
    def _unique(cls, objectives: list[str]) -> list[str]:
        if len(set(objectives)) != len(objectives):
            raise ValueError("an objective is listed twice")
        return objectives

    @model_validator(mode="after")
    def _default_metric(self) -> SweepSpec:
        if self.metric is None:
            self.metric = default_metric(self)
        return self

    @model_validator(mode="after")
    def _budget(self) -> SweepSpec:
        if self.sampler != "grid" and self.budget.trials is None and self.budget.minutes is None:
            raise ValueError(f"budget: sampler {self.sampler} needs budget.trials or budget.minutes")
        if self.sampler != "grid" and (self.sequential or self.families):
            raise ValueError(f"seeds: looks and families: need sampler grid (the arms must be known before the runs), "
                             f"got sampler {self.sampler}")
        return self

    @model_validator(mode="after")
    def _family_caps(self) -> SweepSpec:
        for name, family in self.families.items():
            if family.max is not None and family.max not in self.look_sizes:
                raise ValueError(f"families.{name}.max: {family.max} is not a look's seed count "
                                 f"({', '.join(map(str, self.look_sizes))})")
        if sum(f.arms == "rest" for f in self.families.values()) > 1:
            raise ValueError("families: only one family can take the rest")
        return self

    def identity(self) -> dict[str, Any]:
        """What a trial's result depends on: compared between launches of one sweep."""
        data = self.model_dump(mode="json")
        for key in EXECUTION_KEYS:
            *parents, leaf = key.split(".")
            target = data
            for part in parents:
                target = target[part]
            target.pop(leaf)
        return data

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def run_config(self, objective: str, objective_params: dict[str, Any], run_fields: dict[str, Any],
                   seed: int) -> RunConfig:
        """The RunConfig of one seed of one trial."""
        tracking = {**self.base.get("tracking", {}), "group": self.name}  # W&B groups runs by sweep
        return RunConfig.model_validate({**self.base, **run_fields, "objective": objective,
                                         "objective_params": objective_params, "seed": seed, "tracking": tracking})


def default_metric(spec: SweepSpec) -> str:
    """eval/p_correct (exact, no sampling noise) when the built-in tiny policy trains on a task that enumerates its
    rewarded completions; else eval/accuracy (another model may chat, and a chat answer is scored by extraction)."""
    from ..tasks import get_task

    try:
        cfg = spec.run_config(spec.objectives[0], {}, {}, spec.seed_order[0])
        task = get_task(cfg.task, **cfg.task_params)
    except (ValidationError, ValueError, ConfigError):
        return "eval/accuracy"  # the base is invalid: check_base names the error
    return "eval/p_correct" if cfg.model == "tiny" and task.reachable("", "0") is not None else "eval/accuracy"


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose value differs between two spec identities."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b, path = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, path + ".")
        elif a != b:
            keys.append(f"{path} ({json.dumps(a)} → {json.dumps(b)})")
    return keys


# ---- loading -------------------------------------------------------------------------------------


def key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Path of every mapping key and sequence item → its 1-based line, from a composed YAML node (None: empty file)."""
    if node is None:
        return {}
    lines = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            lines.update(key_lines(value, path))
            lines[path] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(key_lines(item, prefix + (i,)))
    return lines


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every error is a ConfigError naming the file, line and key."""
    path = Path(path)
    data = load_yaml_mapping(path)  # not a file / not YAML / not a mapping: named errors
    if not data:
        raise ConfigError(f"{path}: the sweep file is empty; expected a mapping with name, objectives and seeds "
                          "(see sweeps/quickstart.yaml)")
    lines = key_lines(yaml.compose(path.read_text()))
    where = Where(path, lines)
    base = data.get("base", {})
    if isinstance(base, str):
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        base_data = load_yaml_mapping(base_path)
        base_where = Where(base_path, key_lines(yaml.compose(base_path.read_text())))
        data = {**data, "base": base_data}
    else:
        base_where = where.sub("base")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise where.error(err) from None
    check_base(spec, base_where, where)
    check_space(spec, where)
    check_families(spec, where)
    return spec


class Where:
    """A YAML file and the line of each key in it, for error messages."""

    def __init__(self, path: Path, lines: dict[tuple, int], prefix: tuple = ()):
        self.path, self.lines, self.prefix = path, lines, prefix

    def sub(self, *keys: Any) -> Where:
        return Where(self.path, self.lines, self.prefix + keys)

    def line(self, *keys: Any) -> str:
        """'line N' of the deepest existing key on the path."""
        path = self.prefix + tuple(keys)
        while path and path not in self.lines:
            path = path[:-1]
        return f"line {self.lines[path]}" if path in self.lines else "line 1"

    def fail(self, keys: tuple, message: str) -> ConfigError:
        dotted = ".".join(str(k) for k in self.prefix + tuple(keys))
        return ConfigError(f"{self.path} {self.line(*keys)}: {dotted}: {message}")

    def error(self, err: ValidationError) -> ConfigError:
        loc = tuple(err.errors()[0]["loc"])
        message = format_validation_error(err)
        if self.prefix and loc:  # name the key from the file's top: base.learning_rate
            message = message.replace(".".join(map(str, loc)), ".".join(map(str, self.prefix + loc)), 1)
        return ConfigError(f"{self.path} {self.line(*loc)}: {message}")


def check_base(spec: SweepSpec, where: Where, top: Where) -> None:
    """Every objective makes a valid RunConfig with the base, which sets nothing the sweep owns."""
    for key in SWEEP_OWNED:
        if key in spec.base and key != "tracking":
            raise where.fail((key,), "set by the sweep for every run; remove it from the base config")
    for i, objective in enumerate(spec.objectives):
        try:
            spec.run_config(objective, {}, {}, spec.seed_order[0])
        except ValidationError as err:
            if err.errors()[0]["loc"]:
                raise where.error(err) from None
            raise top.fail(("objectives", i), err.errors()[0]["msg"].removeprefix("Value error, ")) from None


def check_space(spec: SweepSpec, where: Where) -> None:
    """Every searched name exists where it is searched, and every value of it makes a valid RunConfig."""
    fields = RunConfig.model_fields
    for key, dim in spec.space.items():
        if key in SWEEP_OWNED:
            raise where.fail(("space", key), "set by the sweep (list objectives under objectives:, their "
                                             "parameters under objective_space:)")
        if key not in fields:
            raise where.fail(("space", key), "not a RunConfig field")
        _check_values(spec, where.sub("space", key), spec.objectives[0], key, dim)
    for objective, params in spec.objective_space.items():
        if objective not in spec.objectives:
            raise where.fail(("objective_space", objective), f"not one of the sweep's objectives {spec.objectives}")
        known = _parameters(objective)
        for key, dim in params.items():
            if known is not None and key not in known and key not in SCOPED_FIELDS:
                listing = ", ".join(known) or "none"
                raise where.fail(("objective_space", objective, key),
                                 f"{objective} has no parameter {key!r} (its parameters: {listing}; or "
                                 f"{', '.join(SCOPED_FIELDS)})")
            _check_values(spec, where.sub("objective_space", objective, key), objective, key, dim,
                          objective_param=key not in SCOPED_FIELDS)
    if spec.sampler == "grid":
        for keys, dim in _all_dimensions(spec):
            if dim.values is None:
                raise where.fail(keys, "the grid sampler needs values: [...]; ranges need sampler tpe, gp or random")


def _all_dimensions(spec: SweepSpec) -> list[tuple[tuple, Dimension]]:
    dims = [(("space", k), d) for k, d in spec.space.items()]
    return dims + [(("objective_space", o, k), d) for o, ps in spec.objective_space.items() for k, d in ps.items()]


def _parameters(objective: str) -> list[str] | None:
    """The parameter names of a registered objective; None when another library validates them (trl:)."""
    from ..objectives import get_spec

    spec = get_spec(objective)
    return None if spec.kind == "trl" else [name for name, _, _ in spec.parameters()]


def _check_values(spec: SweepSpec, where: Where, objective: str, key: str, dim: Dimension,
                  objective_param: bool = False) -> None:
    for value in dim.ends():
        params, fields = ({key: value}, {}) if objective_param else ({}, {key: value})
        try:
            spec.run_config(objective, params, fields, spec.seed_order[0])
        except (ValidationError, ValueError) as err:
            first = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
            raise where.fail((), f"value {value!r} is invalid: {first.removeprefix('Value error, ')}") from None


def check_families(spec: SweepSpec, where: Where) -> None:
    """The baseline, families and looks can be planned before the runs (sweeps.plan)."""
    problem = plan.check(spec)
    if problem is not None:
        raise where.fail(*problem)
