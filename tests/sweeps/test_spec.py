"""Sweep files: bad input is one line naming the key and line, exit 2, and nothing created; scoping of spaces."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from workbench.cli import app
from workbench.config import ConfigError
from workbench.sweeps.space import grid_points
from workbench.sweeps.spec import load_sweep

from .sweepfiles import tiny_sweep, write_sweep


def launch(tmp_path, monkeypatch, *args: str):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(tmp_path / "sweeps"))
    return CliRunner().invoke(app, ["sweep", "launch", *args])


def without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


BAD = {
    "unknown key": (lambda d: {**d, "colour": "red"}, "colour", "colour:"),
    "unknown key in a dimension": (
        lambda d: {**d, "space": {"learning_rate": {"values": [0.1], "stride": 2}}}, "stride", "stride:"),
    "parameter the objective lacks": (
        lambda d: {**d, "objective_space": {"drpo": {"epsilon_low": {"values": [0.1]}}}},
        "epsilon_low", "epsilon_low:"),
    "space on a sweep-owned field": (lambda d: {**d, "space": {"seed": {"values": [1, 2]}}}, "space.seed", "seed:"),
    "empty grid": (lambda d: {**d, "objective_space": {"drpo": {"delta": {"values": []}}}}, "delta", "delta:"),
    "low > high": (
        lambda d: {**d, "sampler": "tpe", "budget": {"trials": 2},
                   "space": {"learning_rate": {"low": 0.1, "high": 0.01}}},
        "learning_rate", "learning_rate:"),
    "log range including 0": (
        lambda d: {**d, "sampler": "tpe", "budget": {"trials": 2},
                   "space": {"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}},
        "learning_rate", "learning_rate:"),
    "range under the grid sampler": (
        lambda d: {**d, "space": {"learning_rate": {"low": 0.001, "high": 0.1}}},
        "learning_rate", "learning_rate:"),
    "value the RunConfig refuses": (
        lambda d: {**d, "space": {"rollout_precision": {"values": ["fp32", "fp4"]}}},
        "rollout_precision", "rollout_precision:"),
    "seeds missing": (lambda d: without(d, "seeds"), "seeds", None),
    "unknown objective": (lambda d: {**d, "objectives": ["grpo", "nope"]}, "nope", "- nope"),
    "no budget for tpe": (lambda d: {**d, "sampler": "tpe"}, "budget", None),
    "bad base field": (lambda d: {**d, "base": {**d["base"], "learning_rate": -1}},
                       "base.learning_rate", "  learning_rate: -1"),
    "looks that do not reach max": (lambda d: {**d, "seeds": {"initial": 3, "step": 2, "max": 6}}, "max must be",
                                    "seeds:"),
    "a look of one seed": (lambda d: {**d, "seeds": {"initial": 1, "step": 1, "max": 3}}, "initial", "seeds:"),
    "until anything but resolved": (lambda d: {**d, "seeds": {"initial": 2, "step": 2, "max": 4, "until": "never"}},
                                    "until", "seeds:"),
    "looks under tpe": (lambda d: {**d, "sampler": "tpe", "budget": {"trials": 2},
                                   "seeds": {"initial": 2, "step": 2, "max": 4}}, "sampler grid", None),
    "a family naming no arm": (lambda d: {**d, "families": {"primary": {"arms": ["dppo_tv"]}}},
                               "families.primary.arms: 'dppo_tv' names no arm", "    arms:"),
    "a family's cap off the looks": (lambda d: {**d, "seeds": {"initial": 2, "step": 2, "max": 4},
                                                "families": {"rest": {"arms": "rest", "max": 3}}},
                                     "families.rest.max: 3 is not a look", None),
    "two families take the rest": (lambda d: {**d, "families": {"a": "rest", "b": "rest"}}, "only one family", None),
    "an unknown adjustment": (lambda d: {**d, "multiplicity": "bonferroni"}, "multiplicity", "multiplicity:"),
    "a negative margin": (lambda d: {**d, "equivalence_margin": -0.1}, "equivalence_margin", "equivalence_margin:"),
    "a relative margin of 0": (lambda d: {**d, "equivalence_margin": {"relative": 0}}, "equivalence_margin",
                               "equivalence_margin:"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_sweep_file_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, case):
    edit, needle, line_of = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(edit(tiny_sweep("bad")), sort_keys=False))
    text = path.read_text().splitlines()
    result = launch(tmp_path, monkeypatch, str(path))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr, lines
    if line_of is not None:  # the offending key's line: the last one naming it (space comes after base)
        line = max(i + 1 for i, row in enumerate(text) if line_of in row)
        assert f"line {line}:" in lines[0], (lines[0], text)
    assert not (tmp_path / "sweeps").exists()


def test_a_file_that_is_not_yaml_names_its_line(tmp_path, monkeypatch):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nobjectives: [grpo\nseeds: [0]\n")
    result = launch(tmp_path, monkeypatch, str(path))
    assert result.exit_code == 2
    assert "line 3" in result.stderr and "not valid YAML" in result.stderr
    assert not (tmp_path / "sweeps").exists()


def test_an_unreachable_storage_is_refused_before_anything_is_created(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, "unreachable")
    result = launch(tmp_path, monkeypatch, str(path), "--storage", "postgresql://nobody:secret@127.0.0.1:9/none")
    assert result.exit_code == 2
    assert "cannot connect" in result.stderr and "secret" not in result.stderr
    assert not (tmp_path / "sweeps").exists()


def test_grid_scopes_parameters_to_their_objective(tmp_path):
    spec = load_sweep(write_sweep(
        tmp_path, "scoped", space={"rollout_precision": {"values": ["bf16", "fp16"]}},
        objective_space={"drpo": {"delta": {"values": [0.1, 0.3]}, "advantage_weight": {"values": ["abs", "const"]}},
                         "grpo": {"epsilon_high": {"values": [0.2, 0.28]}}}))
    points = grid_points(spec)
    assert len(points) == 2 * 2 + 2 * 2 * 2
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
    for point in points:
        foreign = "drpo." if point["objective"] == "grpo" else "grpo."
        assert not any(key.startswith(foreign) for key in point)
    config = spec.run_config("grpo", {"epsilon_high": 0.28}, {"rollout_precision": "fp16"}, seed=3)
    assert (config.objective_params, config.rollout_precision, config.seed) == ({"epsilon_high": 0.28}, "fp16", 3)
    assert config.tracking.group == "scoped"


def test_base_config_by_path_reports_errors_in_that_file(tmp_path):
    (tmp_path / "base.yaml").write_text("max_steps: 2\nlearning_rate: 0\n")
    path = tmp_path / "by_path.yaml"
    path.write_text(yaml.safe_dump({**tiny_sweep("by_path"), "base": "base.yaml"}))
    with pytest.raises(ConfigError, match=r"base\.yaml line 2: learning_rate"):
        load_sweep(path)
