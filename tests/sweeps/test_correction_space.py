"""The correction axis in sweeps: searched for every objective (``space: {correction: ...}``) or scoped to one
(``objective_space: {grpo: {correction: ...}}``), preset names and null as grid values; bad values are one-line
errors naming the line; report arms are labelled with their correction."""

from __future__ import annotations

import pytest

from workbench.analysis.load import arm_label
from workbench.config import ConfigError
from workbench.sweeps.space import grid_points, split
from workbench.sweeps.spec import load_sweep

from .sweepfiles import write_sweep


def run_configs(spec):
    out = []
    for point in grid_points(spec):
        params = split(point["objective"], {k: v for k, v in point.items() if k != "objective"})
        out.append(spec.run_config(params.objective, params.objective_params, params.run_fields, spec.seeds[0]))
    return out


def test_correction_is_a_grid_axis_for_every_objective(tmp_path):
    path = write_sweep(tmp_path, "corr", objectives=["grpo", "trl:dapo"], objective_space={},
                       space={"correction": {"values": [None, "tis@verl_fp8", "mis@verl_seq"]}})
    configs = run_configs(load_sweep(path))
    assert sorted((c.objective, str(c.correction)) for c in configs) == [
        ("grpo", "None"), ("grpo", "mis@verl_seq"), ("grpo", "tis@verl_fp8"),
        ("trl:dapo", "None"), ("trl:dapo", "mis@verl_seq"), ("trl:dapo", "tis@verl_fp8")]


def test_correction_scoped_to_one_objective(tmp_path):
    path = write_sweep(tmp_path, "scoped", objectives=["grpo", "drpo"],
                       objective_space={"grpo": {"correction": {"values": ["tis@verl_fp8", "opsm@trl"]}},
                                        "drpo": {"delta": {"values": [0.1]}}})
    configs = run_configs(load_sweep(path))
    assert sorted((c.objective, str(c.correction), c.objective_params.get("delta")) for c in configs) == [
        ("drpo", "None", 0.1), ("grpo", "opsm@trl", None), ("grpo", "tis@verl_fp8", None)]
    assert all("correction" not in c.objective_params for c in configs)


@pytest.mark.parametrize(("fields", "message"), [
    ({"space": {"correction": {"values": ["tis@nope"]}}}, "space.correction: value 'tis@nope' is invalid: "
                                                          "correction: unknown correction 'tis@nope'"),
    ({"objective_space": {"grpo": {"correction": {"values": ["mis"]}, "colour": {"values": [1]}}}},
     "grpo has no parameter 'colour'"),
    ({"space": {"correction": {"values": [{"name": "tis"}]}}}, "space.correction.values"),
])
def test_bad_correction_values_are_one_line_errors(tmp_path, fields, message):
    path = write_sweep(tmp_path, "bad", **fields)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert message in str(err.value) and "\n" not in str(err.value) and "line" in str(err.value)


def test_arm_labels_name_the_correction():
    assert arm_label("grpo", {"correction": "tis@verl_fp8"}, ["correction"], "tis@verl_fp8") == "grpo + tis(token, 2.0)"
    assert arm_label("drpo", {"delta": 0.1}, ["delta"], {"name": "mis", "level": "sequence", "low": 0.5,
                                                         "high": 2.0}) == "drpo + mis(sequence, 0.5, 2.0) (δ=0.1)"
    assert arm_label("grpo", {"correction": None}, ["correction"], None) == "grpo"
    assert arm_label("grpo", {}, [], "unknown@thing") == "grpo + unknown@thing"


def test_per_objective_figures_split_arms_by_correction():
    import pandas as pd

    from workbench.analysis.load import objective_rows

    runs = pd.DataFrame({"objective": ["grpo", "grpo", "drpo", "drpo"],
                         "correction": [None, "tis@verl_fp8", {"name": "mis", "level": "token"}, float("nan")]})
    assert list(objective_rows(runs)) == ["grpo", "grpo + tis(token, 2.0)", "drpo + mis(token, 3.0)", "drpo"]
    same = pd.DataFrame({"objective": ["grpo", "drpo"], "correction": ["tis", "tis"]})
    assert list(objective_rows(same)) == ["grpo", "drpo"]  # not varied: the rows stay the objectives
    assert list(objective_rows(pd.DataFrame({"objective": ["grpo"]}))) == ["grpo"]
