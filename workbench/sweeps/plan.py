"""A grid sweep's declared comparisons, from the sweep file alone: each arm against its baseline (the baseline of its
own setting when the sweep's ``space:`` sets several), in the family the file declares for it.

An arm here is a grid point: the Optuna parameters of its trials (``objective``, the ``space:`` fields, the
objective's scoped ones as ``drpo.delta``). The launcher reads the plan to add seeds look by look, the report to
state the verdicts: both from this one module, before any run has a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .space import OBJECTIVE, Space, grid_points, param_name

IMPLICIT_FAMILY = "all"  # the one family of a sweep that declares none
REST = "rest"  # the family of comparisons a declaration leaves out, unless one family takes the rest


class SweepSpec(Space, Protocol):
    """What a plan is read from (a sweeps.spec.SweepSpec, which validates itself with :func:`check`)."""

    base: dict[str, Any]
    baseline: str | None
    families: dict[str, Any]
    sampler: str

    @property
    def sequential(self) -> bool: ...


@dataclass(frozen=True)
class Planned:
    """One declared comparison: arm and baseline as grid points (their keys: :func:`point_key`), its family."""

    arm: str
    baseline: str
    family: str


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def setting(spec: SweepSpec, point: dict[str, Any]) -> tuple:
    """The values of the sweep's space: fields at this point (its setting)."""
    return tuple(point.get(k) for k in spec.space)


def correction(spec: SweepSpec, point: dict[str, Any]) -> Any:
    objective = point[OBJECTIVE]
    for key in (param_name(objective, "correction"), "correction"):
        if key in point:
            return point[key]
    return spec.base.get("correction")


def matches(spec: SweepSpec, point: dict[str, Any], name: str) -> bool:
    """Whether ``name`` ('drpo', 'grpo + tis@verl_fp8', 'drpo delta=0.15', 'grpo rollout_precision=int4') names
    this arm: its objective, its correction as written in the sweep file or as labelled (none when the name gives
    none), and every key=value among its objective parameters and space: fields."""
    head, _, tail = name.partition(" + ")
    words, tail_words = head.split(), tail.split()
    if not words or (tail and not tail_words):
        return False
    objective, pairs = words[0], words[1:] + tail_words[1:]
    if point[OBJECTIVE] != objective:
        return False
    given = tail_words[0] if tail_words else None
    have = correction(spec, point)
    if given is None and have is not None or given is not None and not _same_correction(have, given):
        return False
    for pair in pairs:
        key, sep, value = pair.partition("=")
        found = next((point[k] for k in (param_name(objective, key), key) if k in point), _MISSING)
        if not sep or found is _MISSING or not _same(found, value):
            return False
    return True


_MISSING = object()


def _same(value: Any, text: str) -> bool:
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def _same_correction(have: Any, given: str) -> bool:
    if have is None:
        return False
    if isinstance(have, str) and have == given:
        return True
    from ..objectives import correction_from_setting

    try:
        return correction_from_setting(have).label == given
    except (ValueError, TypeError, AttributeError):
        return False


def baselines(spec: SweepSpec, points: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]] | None:
    """Setting → its baseline point ({(): point} for one baseline of every arm); None when the sweep's baseline
    (``baseline:``, else its one grpo arm) names no arm, or several in one setting."""
    name = spec.baseline or "grpo"
    found = [p for p in points if matches(spec, p, name)]
    if len(found) == 1:
        return {(): found[0]}
    by_setting = {setting(spec, p): p for p in found}
    if not found or len(by_setting) != len(found):
        return None
    return by_setting


def plan(spec: SweepSpec) -> list[Planned] | None:
    """Every declared comparison of a grid sweep, in the grid's order; None when the sweep has no baseline to
    compare with (see :func:`baselines`) or is not a grid."""
    if spec.sampler != "grid":
        return None
    points = grid_points(spec)
    base = baselines(spec, points)
    if base is None:
        return None
    out = []
    for point in points:
        baseline = base.get(()) or base.get(setting(spec, point))
        if baseline is None or baseline == point:
            continue
        out.append(Planned(point_key(point), point_key(baseline), family_of(spec, point)))
    return out


def family_of(spec: SweepSpec, point: dict[str, Any]) -> str:
    """The first declared family whose arms and settings include this arm, else the one that takes the rest."""
    if not spec.families:
        return IMPLICIT_FAMILY
    for name, family in spec.families.items():
        if family.arms == REST:
            continue
        named = any(matches(spec, point, arm) for arm in family.arms)
        where = family.settings == "all" or any(all(_same(point.get(k), str(v)) for k, v in s.items())
                                                for s in family.settings)
        if named and where:
            return name
    return next((name for name, family in spec.families.items() if family.arms == REST), REST)


def check(spec: SweepSpec) -> tuple[tuple, str] | None:
    """Why the sweep file's families or looks cannot be planned: (the key's path, one line), or None."""
    if not (spec.sequential or spec.families):
        return None
    points = grid_points(spec)
    if baselines(spec, points) is None:
        return ("baseline",), (f"{spec.baseline or 'grpo'!r} must name one arm, or one arm per setting of space:, "
                               "for families or seeds until resolved")
    for name, family in spec.families.items():
        for arm in [] if family.arms == REST else family.arms:
            if not any(matches(spec, p, arm) for p in points):
                return ("families", name, "arms"), f"{arm!r} names no arm of the sweep"
        for s in [] if family.settings == "all" else family.settings:
            unknown = [k for k in s if k not in spec.space]
            if unknown:
                return ("families", name, "settings"), f"{unknown[0]!r} is not a field of space:"
    return None
