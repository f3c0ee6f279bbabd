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
from .load import failed_to_learn, point_labels
from .text import MULTIPLICITY_NAMES, OUTLIER_COLUMNS, outlier_columns, outlier_phrase

# The columns of results.csv a recomputation rewrites (a build's names, analysis.text.results_frame).
COLUMNS = ("family", "p", "tost_p", "p_adjusted", "tost_p_adjusted", "look", "compared_seeds", "stop", "margin",
           "verdict", *OUTLIER_COLUMNS)
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
    plan = verdict_plan(spec)
    decisions = verdicts.decide(pairs, plan)
    outliers = verdicts.leave_one_out(pairs, plan, decisions)
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
                                       d.n, d.stop, test.margin if test else None, d.verdict,
                                       *outlier_columns(outliers.get(arm)).values()]
    write_text_atomic(folder / "results.csv", table.to_csv(index=False))
    write_text_atomic(folder / NOTE, _note(folder, sweep_file, spec, table, outliers) + _stability(seeds))
    return table


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (a report folder holds seeds.csv and results.csv)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a CSV table ({str(err).splitlines()[0]})") from None


def _note(folder: Path, sweep_file: str | Path, spec: SweepSpec, table: pd.DataFrame,
          outliers: dict[str, verdicts.LeaveOneOut]) -> str:
    compared = table[table["verdict"].notna()]
    rows = ["| family | arm | baseline | Δ [95% CI] | paired seeds | p | p adjusted | TOST p | TOST p adjusted | "
            "verdict | leave one seed pair out |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in compared.sort_values("family", kind="stable").itertuples():  # within a family, the report's order
        check = outliers.get(r.arm)
        rows.append(f"| {r.family} | {r.arm} | {r.baseline} | {_num(r.diff, True)} [{_num(r.diff_low)}, "
                    f"{_num(r.diff_high)}] | {int(r.compared_seeds)} | {_p(r.p)} | {_p(r.p_adjusted)} | "
                    f"{_p(r.tost_p)} | {_p(r.tost_p_adjusted)} | {r.verdict} | "
                    f"{outlier_phrase(check) if check else '—'} |")
    return (f"# Verdicts recomputed\n\nThe verdicts of this folder were recomputed from its `seeds.csv` under "
            f"`{sweep_file}` (its families, `multiplicity: {spec.multiplicity}` — "
            f"{MULTIPLICITY_NAMES[spec.multiplicity]} — and margin {spec.equivalence_margin}), with\n\n"
            f"    workbench report verdicts {folder} --sweep {sweep_file}\n\n"
            "without re-running the study: `results.csv` holds them (columns family, p_adjusted, tost_p_adjusted, "
            "verdict). The figures and `report.md` are from the original build, whose verdict words were not "
            "adjusted for multiplicity: where they differ, this table and `results.csv` are the verdicts. The last "
            "column decides each resolved verdict again with each of its seed pairs left out in turn (same looks, "
            "family and adjustment; columns loo_* of `results.csv`).\n\n"
            + "\n".join(rows) + "\n")


def _stability(seeds: pd.DataFrame) -> str:
    """The runs of seeds.csv that failed to learn (final below the same run's base metric), which a report built
    before the Stability table counted them does not show."""
    metric = str(seeds["metric"].iloc[0]) if "metric" in seeds and len(seeds) else None
    if metric is None or f"base {metric}" not in seeds:
        return "\nFailed to learn: not measured (seeds.csv holds no base metric).\n"
    failed = seeds[[failed_to_learn(f, b) for f, b in zip(seeds["final"], seeds[f"base {metric}"])]]
    listed = "; ".join(f"{r.arm} seed {int(r.seed)} ({r.final:.3f})" for r in failed.itertuples())
    return (f"\nFailed to learn (final {metric} below the same run's untrained policy's, from seeds.csv): "
            f"{len(failed)} of {len(seeds)} runs{': ' + listed if listed else ''}. Collapsed seeds: the Stability "
            "table of report.md.\n")


def _num(x: float, signed: bool = False) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:{'+' if signed else ''}.3f}"


def _p(p: float | None) -> str:
    return "—" if p is None or p != p else f"{p:.3g}"
