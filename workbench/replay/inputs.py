"""What to replay: the runs under a target, and the objectives, corrections and steps asked for (bad input raises
ConfigError, one line naming the option)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..batches import BATCHES_DIR, kept_steps
from ..config import ConfigError
from ..objectives import available_objectives, get_objective, get_spec

REFERENCE = "pg"  # always replayed: the gradient norms are relative to plain importance-sampled PG


def resolve_runs(target: str | Path, root: str | Path | None = None) -> list[Path]:
    """The run folders that kept batches under ``target``: a run folder, any folder holding runs, or a sweep name.

    Raises ConfigError naming the target when it is nothing of the kind or no run under it kept batches."""
    path = Path(target)
    if not path.exists():
        from ..sweeps.store import sweep_folder

        path = sweep_folder(str(target), root)
        if not path.is_dir():
            raise ConfigError(f"{target}: neither a run folder, a folder of runs nor a sweep name")
    if (path / "summary.json").is_file():
        runs = [path]
    else:
        runs = sorted({p.parent.parent.parent for p in path.glob(f"**/{BATCHES_DIR}/step-*/meta.json")},
                      key=_natural_key)
    kept = [run for run in runs if kept_steps(run)]
    if not kept:
        raise ConfigError(f"{target}: no kept batches to replay; train with `--set tracking.keep_batches_every=N` "
                          "(or tracking: {keep_batches_every: N} in the run config or the sweep's base)")
    return kept


def _natural_key(path: Path) -> tuple:
    """trials/2 before trials/10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for part in path.parts for p in part.split("-"))


def parse_objectives(spec: str | None, run_objective: str | None = None) -> list[str]:
    """``all`` (every registered family at its defaults), a comma list (families or presets), or None: the run's
    own objective and the quickstart's three; ``pg`` is always included (the norms are relative to it)."""
    if spec is None or spec.strip() == "":
        names = [n for n in (run_objective, "grpo", "dppo_tv", "drpo") if n and get_spec(n).kind != "trl"]
    elif spec.strip() == "all":
        names = available_objectives()
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    return _known([REFERENCE] + [n for n in dict.fromkeys(names) if n != REFERENCE], get_objective, "--objectives")


def parse_corrections(spec: str | None) -> list[str]:
    """The corrections (families or presets) to cross with every objective (``--corrections``)."""
    if not spec:
        return []
    from ..objectives import get_correction

    return _known([n.strip() for n in spec.split(",") if n.strip()], get_correction, "--corrections")


def _known(names: list[str], get: Callable[[str], Any], option: str) -> list[str]:
    """``names`` when ``get`` knows every one; else a one-line error naming the option."""
    for name in names:
        try:
            get(name)
        except ValueError as err:
            raise ConfigError(f"{option}: {err}") from None
    return names


def parse_steps(spec: str | None, available: Sequence[int]) -> list[int]:
    """``--steps 20,40`` or None (every kept step); a step the run did not keep is refused."""
    if not spec:
        return list(available)
    try:
        steps = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps {spec!r}: expected a comma list of step numbers") from None
    missing = [s for s in steps if s not in available]
    if missing:
        raise ConfigError(f"--steps: step {missing[0]} was not kept (kept: {', '.join(map(str, available))})")
    return steps
