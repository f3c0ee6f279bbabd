"""`workbench report verdicts`: a committed report's verdicts recomputed from its seeds.csv under the sweep file's
families, by hand against scipy and statsmodels; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from workbench.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def report(tmp_path) -> Path:
    """reports/drpo_delta as committed: pg against drpo at five δ, 10 paired seeds each."""
    folder = tmp_path / "drpo_delta"
    shutil.copytree(ROOT / "reports" / "drpo_delta", folder)
    return folder


def sweep_file(tmp_path: Path, **fields) -> Path:
    data = yaml.safe_load((ROOT / "sweeps" / "drpo_delta.yaml").read_text())
    path = tmp_path / "drpo_delta.yaml"
    path.write_text(yaml.safe_dump({**data, **fields}))
    return path


def test_verdicts_are_the_holm_adjusted_paired_tests_of_seeds_csv(tmp_path, report):
    result = CliRunner().invoke(app, ["report", "verdicts", str(report), "--sweep", str(sweep_file(tmp_path))])
    assert result.exit_code == 0, result.output
    seeds, table = pd.read_csv(report / "seeds.csv"), pd.read_csv(report / "results.csv")
    base = seeds[seeds["arm"] == "pg"].set_index("seed")["final"]
    compared = table[table["baseline"] == "pg"]
    by_hand = {arm: scipy_stats.ttest_rel(seeds[seeds["arm"] == arm].set_index("seed")["final"].loc[base.index],
                                          base).pvalue for arm in compared["arm"]}
    holm = dict(zip(by_hand, multipletests(list(by_hand.values()), method="holm")[1]))
    for row in compared.itertuples():
        assert row.p == pytest.approx(by_hand[row.arm]) and row.p_adjusted == pytest.approx(holm[row.arm])
        assert row.family == "delta" and row.compared_seeds == 10 and row.stop in ("resolved", "max reached")
        if row.verdict in ("better", "worse"):
            assert row.p_adjusted < 0.05 and (row.diff > 0) == (row.verdict == "better")
        if row.verdict == "matches":
            assert row.tost_p_adjusted < 0.05 <= row.p_adjusted
    assert "drpo (δ=0.05)" in set(compared.loc[compared["verdict"] == "better", "arm"])
    assert np.isnan(table.loc[table["arm"] == "pg", "p_adjusted"]).all()  # the baseline is compared with nothing
    note = (report / "verdicts.md").read_text()
    assert "recomputed from its `seeds.csv`" in note and "Holm" in note and "drpo (δ=0.05)" in note
    # The leave-one-out columns: every resolved verdict tried without each of its seeds, by hand for δ = 0.05.
    resolved = compared[compared["stop"] == "resolved"]
    assert (resolved["loo_tried"] == resolved["compared_seeds"]).all()
    assert compared.loc[compared["stop"] != "resolved", "loo_tried"].isna().all()
    row = compared.set_index("arm").loc["drpo (δ=0.05)"]
    arm = seeds[seeds["arm"] == "drpo (δ=0.05)"].set_index("seed")["final"].loc[base.index]
    worst = {}
    for seed in base.index:
        keep = base.index != seed
        p = {a: scipy_stats.ttest_rel(seeds[seeds["arm"] == a].set_index("seed")["final"].loc[base.index][keep],
                                      base[keep]).pvalue if a == "drpo (δ=0.05)" else by_hand[a] for a in by_hand}
        worst[seed] = dict(zip(p, multipletests(list(p.values()), method="holm")[1]))["drpo (δ=0.05)"]
    assert arm.notna().all() and row.loo_p == pytest.approx(max(worst.values()))
    assert row.loo_changed == sum(p >= 0.05 for p in worst.values())
    assert "leave one seed pair out" in note


def test_families_are_adjusted_apart(tmp_path, report):
    families = {"small": {"arms": ["drpo delta=0.05"]}, "rest": "rest"}
    result = CliRunner().invoke(app, ["report", "verdicts", str(report), "--sweep",
                                      str(sweep_file(tmp_path, families=families))])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(report / "results.csv").set_index("arm")
    assert table.at["drpo (δ=0.05)", "family"] == "small"
    assert table.at["drpo (δ=0.05)", "p_adjusted"] == pytest.approx(table.at["drpo (δ=0.05)", "p"])  # alone


@pytest.mark.parametrize("case", ["another sweep", "no folder", "not a table"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, report, case):
    sweep = sweep_file(tmp_path)
    if case == "another sweep":
        sweep = ROOT / "sweeps" / "quickstart.yaml"
    if case == "no folder":
        report = tmp_path / "nowhere"
    if case == "not a table":
        (report / "seeds.csv").write_bytes(b"\x00\xff\xfe")
    files = ("results.csv", "verdicts.md")
    before = {f: (report / f).read_bytes() if (report / f).exists() else None for f in files}
    result = CliRunner().invoke(app, ["report", "verdicts", str(report), "--sweep", str(sweep)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.stderr
    assert {f: (report / f).read_bytes() if (report / f).exists() else None for f in files} == before


def test_runs_that_failed_to_learn_are_counted_from_seeds_csv(tmp_path, report):
    seeds = pd.read_csv(report / "seeds.csv")
    seeds.loc[(seeds["arm"] == "pg") & (seeds["seed"] == 3), "final"] = 0.01  # below its base, 0.066
    seeds.to_csv(report / "seeds.csv", index=False)
    result = CliRunner().invoke(app, ["report", "verdicts", str(report), "--sweep", str(sweep_file(tmp_path))])
    assert result.exit_code == 0, result.output
    note = (report / "verdicts.md").read_text()
    assert "Failed to learn" in note and "1 of 60 runs: pg seed 3 (0.010)" in note
