"""Presets (`family@preset`): resolved by the registry, so configs, sweeps and reports see them like any objective."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.config import ConfigError, RunConfig
from workbench.objectives import available_presets, get_objective, get_spec, register_preset
from workbench.objectives import registry

EXPECTED = {
    "drpo@authors": {"delta": 12.5},
    "spo@authors": {"epsilon": 12.5},
    "grpo@dapo": {"epsilon_low": 0.2, "epsilon_high": 0.28},
    "clip_cov@7b": {"epsilon_low": 1.0, "epsilon_high": 1.0},
    "kl_cov@32b": {"ratio": 2e-4},
    "grpo@dual_clip": {"clip_ratio_c": 3.0},
}


@pytest.fixture
def scratch_presets(monkeypatch):
    monkeypatch.setattr(registry, "_PRESETS", dict(registry._PRESETS))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_preset_is_its_family_with_the_sources_settings(name):
    assert name in available_presets()
    spec, family = get_spec(name), get_spec(name.partition("@")[0])
    assert spec.fn is family.fn and spec.paper == family.paper and spec.source
    params = get_objective(name).params.model_dump()
    assert params == {**family.params_model().model_dump(), **EXPECTED[name]}
    assert {p: d for p, d, _ in spec.parameters()} == params  # listing and captions read the preset's values


def test_given_parameters_override_the_preset_and_are_still_validated():
    assert get_objective("drpo@authors", delta=1.0).params.delta == 1.0
    assert get_objective("drpo@authors", advantage_weight="const").params.delta == 12.5
    with pytest.raises(ValueError, match="delta"):
        get_objective("drpo@authors", delta=-1.0)
    with pytest.raises(ValueError, match="has no parameter 'epsilon'"):
        get_objective("drpo@authors", epsilon=0.2)


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        get_objective("drpo@nope")
    assert "'drpo@nope'" in str(err.value) and "drpo@authors" in str(err.value)


def test_a_run_config_names_a_preset(tmp_path):
    cfg = RunConfig.parse({"objective": "drpo@authors", "objective_params": {"advantage_weight": "square"}})
    assert cfg.objective == "drpo@authors"
    with pytest.raises(ConfigError, match="objective: unknown objective 'spo@nope'"):
        RunConfig.parse({"objective": "spo@nope"})
    with pytest.raises(ConfigError, match="objective_params"):
        RunConfig.parse({"objective": "grpo@dapo", "objective_params": {"epsilon_high": 0.0}})


def test_bad_presets_are_refused_at_registration(scratch_presets):
    with pytest.raises(ValueError, match="already registered"):
        register_preset("drpo@authors", "again", delta=1.0)
    with pytest.raises(ValueError, match="registered family"):
        register_preset("ppo@x", "somewhere", delta=1.0)
    with pytest.raises(ValueError, match="source"):
        register_preset("drpo@x", "", delta=1.0)
    with pytest.raises(ValueError, match="no parameter 'epsilon'"):
        register_preset("drpo@x", "somewhere", epsilon=1.0)
    with pytest.raises(ValueError, match="delta"):
        register_preset("drpo@x", "somewhere", delta=-1.0)
    assert "drpo@x" not in available_presets()


def test_objectives_list_shows_the_presets_and_their_sources():
    result = CliRunner().invoke(app, ["objectives", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in [*EXPECTED, "delta=12.5", "epsilon_high=0.28", "ratio=0.0002", "arXiv 2503.14476", "UniRL"]:
        assert text in result.output
