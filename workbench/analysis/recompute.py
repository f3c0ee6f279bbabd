"""Verdicts recomputed from a committed report's ``seeds.csv`` and its sweep file: for a study whose runs are not
kept, under the sweep file's declared families, multiplicity and margin (``workbench report verdicts``).

The per-seed values are the report's own; the arms are read back to the sweep file's grid points through the labels
the report gave them (analysis.load.point_labels), and the decisions are workbench.verdicts.decide's, as ``report
build`` makes them. ``results.csv`` gets the verdict columns a build writes (its other columns are kept), and
``verdicts.md`` says what was recomputed, from what, and how.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import verdicts
from ..config import ConfigError
from ..sweeps.looks import verdict_plan
from ..sweeps.plan import plan as declared_comparisons
from ..sweeps.spec import SweepSpec, load_sweep
from ..tracking import write_text_atomic
from .load import point_labels
from .text import MULTIPLICITY_NAMES

# The columns of results.csv a recomputation rewrites (a build's names, analysis.text.results_frame).
COLUMNS = ("family", "p", "tost_p", "p_adjusted", "tost_p_adjusted", "look", "compared_seeds", "stop", "margin",
           "verdict")
NOTE = "verdicts.md"


def recompute(folder: str | Path, sweep_file: str | Path) -> pd.DataFrame:
    """Rewrite ``folder``'s results.csv verdict columns from its seeds.csv under ``sweep_file``; the new table."""
    folder = Path(folder)
    spec = load_sweep(sweep_file)
    seeds, results = _read(folder / "seeds.csv"), _read(folder / "results.csv")
    labels = point_labels(spec)
    unknown = sorted(set(seeds["arm"]) - set(labels.values()))
    if unknown:
        raise ConfigError(f"{folder / 'seeds.csv'}: arm {unknown[0]!r} is not an arm of {sweep_file} "
                          f"(its arms: {'; '.join(labels.values())})")
    values = {key: {int(r.seed): float(r.final) for r in seeds[seeds["arm"] == label].itertuples()}
              for key, label in labels.items()}
    planned = declared_comparisons(spec)
    if planned is None:
        raise ConfigError(f"{sweep_file}: baseline: names no arm to compare with (or the sweep is not a grid)")
    pairs = [verdicts.Pair(labels[p.arm], p.family, values[p.arm], values[p.baseline]) for p in planned]
    decisions = verdicts.decide(pairs, verdict_plan(spec))
    baseline_of = {labels[p.arm]: labels[p.baseline] for p in planned}
    table = results.copy()
    for column in COLUMNS:
        table[column] = table[column].astype(object) if column in table else None
    for i, arm in table["arm"].items():
        d = decisions.get(arm)
        if d is None:
            table.loc[i, list(COLUMNS)] = None
            continue
        if table.at[i, "baseline"] != baseline_of[arm]:
            raise ConfigError(f"{folder / 'results.csv'}: {arm!r} was compared with {table.at[i, 'baseline']!r}, "
                              f"the sweep file compares it with {baseline_of[arm]!r}")
        test = d.test
        table.loc[i, list(COLUMNS)] = [d.family, test.p if test else None, test.tost_p if test else None,
                                       d.p_adjusted if test else None, d.tost_adjusted if test else None, d.look,
                                       d.n, d.stop, test.margin if test else None, d.verdict]
    write_text_atomic(folder / "results.csv", table.to_csv(index=False))
    write_text_atomic(folder / NOTE, _note(folder, sweep_file, spec, table))
    return table


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (a report folder holds seeds.csv and results.csv)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a CSV table ({str(err).splitlines()[0]})") from None


def _note(folder: Path, sweep_file: str | Path, spec: SweepSpec, table: pd.DataFrame) -> str:
    compared = table[table["verdict"].notna()]
    rows = ["| family | arm | baseline | Δ [95% CI] | paired seeds | p | p adjusted | TOST p | TOST p adjusted | "
            "verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in compared.sort_values("family", kind="stable").itertuples():  # within a family, the report's order
        rows.append(f"| {r.family} | {r.arm} | {r.baseline} | {_num(r.diff, True)} [{_num(r.diff_low)}, "
                    f"{_num(r.diff_high)}] | {int(r.compared_seeds)} | {_p(r.p)} | {_p(r.p_adjusted)} | "
                    f"{_p(r.tost_p)} | {_p(r.tost_p_adjusted)} | {r.verdict} |")
    return (f"# Verdicts recomputed\n\nThe verdicts of this folder were recomputed from its `seeds.csv` under "
            f"`{sweep_file}` (its families, `multiplicity: {spec.multiplicity}` — "
            f"{MULTIPLICITY_NAMES[spec.multiplicity]} — and margin {spec.equivalence_margin}), with\n\n"
            f"    workbench report verdicts {folder} --sweep {sweep_file}\n\n"
            "without re-running the study: `results.csv` holds them (columns family, p_adjusted, tost_p_adjusted, "
            "verdict). The figures and `report.md` are from the original build, whose verdict words were not "
            "adjusted for multiplicity: where they differ, this table and `results.csv` are the verdicts.\n\n"
            + "\n".join(rows) + "\n")


def _num(x: float, signed: bool = False) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:{'+' if signed else ''}.3f}"


def _p(p: float | None) -> str:
    return "—" if p is None or p != p else f"{p:.3g}"
