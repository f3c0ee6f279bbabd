"""The registry: names refused twice, errors that name what is wrong, plugins checked at load time."""

from __future__ import annotations

import pytest
import torch

from workbench.objectives import ObjectiveOutput, available_objectives, get_objective, get_spec, register_objective
from workbench.objectives import registry

from . import plugins

BUILT_IN = ["cispo", "clip_cov", "dppo_kl", "dppo_topk_kl", "dppo_topk_tv", "dppo_tv", "drpo", "gmpo", "gpg", "grpo",
            "gspo", "kl_cov", "pg", "sapo", "spo"]
DEFAULTS = {
    "pg": {},
    "grpo": {"epsilon_low": 0.2, "epsilon_high": 0.2, "clip_ratio_c": None, "trust_region_against": "behaviour"},
    "dppo_tv": {"delta": 0.15, "delta_low": None, "delta_high": None, "clip_c": 20.0,
                "trust_region_against": "behaviour"},
    "dppo_kl": {"delta": 0.05, "delta_low": None, "delta_high": None, "clip_c": 20.0,
                "trust_region_against": "behaviour"},
    "spo": {"epsilon": 0.2, "advantage_weight": "abs"},
    "drpo": {"delta": 0.15, "advantage_weight": "abs"},
    "clip_cov": {"epsilon_low": 0.2, "epsilon_high": 0.2, "clip_ratio": 2e-4, "cov_low": 1.0, "cov_high": 5.0},
    "kl_cov": {"ratio": 2e-3, "beta": 1.0},
    "dppo_topk_tv": {"delta": 0.15, "delta_low": None, "delta_high": None, "clip_c": 20.0},
    "dppo_topk_kl": {"delta": 0.05, "delta_low": None, "delta_high": None, "clip_c": 20.0},
    "cispo": {"epsilon_low": None, "epsilon_high": 4.0},
    "sapo": {"temperature_pos": 1.0, "temperature_neg": 1.05},
    "gpg": {},
    "gspo": {"epsilon_low": 3e-4, "epsilon_high": 4e-4},
    "gmpo": {"epsilon_low": 0.4, "epsilon_high": 0.4},
}


def plugin(attr: str) -> str:
    return f"{plugins.__name__}:{attr}"


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_built_ins_are_registered_with_the_issue_defaults():
    assert set(BUILT_IN) <= set(available_objectives())
    for name, defaults in DEFAULTS.items():
        spec = get_spec(name)
        assert {p: d for p, d, _ in spec.parameters()} == defaults, name
        assert all(help_ for _, _, help_ in spec.parameters()), f"{name}: every parameter carries its help"
        assert spec.paper.startswith("arXiv"), name
        assert get_objective(name).params.model_dump() == defaults


def test_a_taken_name_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="'drpo' is already registered"):
        register_objective("drpo")(plugins.scaled_pg)
    assert get_spec("drpo").fn.__module__ == "workbench.objectives.drpo"


def test_the_decorator_registers_by_name(scratch_registry):
    register_objective("scaled_pg_test", params=plugins.ScaleParams)(plugins.scaled_pg)
    assert "scaled_pg_test" in available_objectives()
    assert get_objective("scaled_pg_test", scale=2.0).params.scale == 2.0


def test_the_decorator_refuses_a_function_that_breaks_the_signature(scratch_registry):
    with pytest.raises(ValueError, match="expected fn\\(logp, behaviour_logp, advantages, mask, params"):
        register_objective("bad_signature_test")(plugins.wrong_signature)
    assert "bad_signature_test" not in available_objectives()


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        get_objective("ppo")
    assert "'ppo'" in str(err.value) and all(name in str(err.value) for name in BUILT_IN)


@pytest.mark.parametrize(("name", "params", "named"), [
    ("drpo", {"delta": 0.0}, "delta"),
    ("drpo", {"delta": -1.0}, "delta"),
    ("dppo_tv", {"delta": 0.0}, "delta"),
    ("dppo_kl", {"clip_c": 0.0}, "clip_c"),
    ("dppo_tv", {"delta_low": 0.0}, "delta_low"),
    ("dppo_kl", {"delta_high": -0.1}, "delta_high"),
    ("grpo", {"epsilon_low": 0.0}, "epsilon_low"),
    ("grpo", {"epsilon_high": -0.1}, "epsilon_high"),
    ("grpo", {"clip_ratio_c": 1.0}, "clip_ratio_c"),
    ("grpo", {"trust_region_against": "reference"}, "trust_region_against"),
    ("spo", {"epsilon": 0.0}, "epsilon"),
    ("spo", {"advantage_weight": "cube"}, "advantage_weight"),
    ("clip_cov", {"clip_ratio": 0.0}, "clip_ratio"),
    ("clip_cov", {"clip_ratio": 1.5}, "clip_ratio"),
    ("clip_cov", {"cov_low": 5.0, "cov_high": 1.0}, "cov_low"),
    ("kl_cov", {"ratio": 0.0}, "ratio"),
    ("kl_cov", {"ratio": 2.0}, "ratio"),
    ("kl_cov", {"beta": -1.0}, "beta"),
])
def test_an_out_of_range_parameter_is_named(name, params, named):
    with pytest.raises(ValueError, match=named):
        get_objective(name, **params)


def test_ratios_of_exactly_one_are_accepted():
    get_objective("clip_cov", clip_ratio=1.0)
    get_objective("kl_cov", ratio=1.0)


def test_an_unknown_parameter_is_named_with_the_accepted_ones():
    with pytest.raises(ValueError) as err:
        get_objective("drpo", epsilon=0.2)
    assert "'epsilon'" in str(err.value) and "delta" in str(err.value) and "advantage_weight" in str(err.value)
    with pytest.raises(ValueError, match="accepted: none"):
        get_objective("pg", delta=0.1)


def test_a_plugin_loads_by_import_path():
    objective = get_objective(plugin("scaled_pg"), scale=3.0)
    logp = torch.zeros(1, 2, requires_grad=True)
    out = objective(logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    assert torch.equal(out.per_token_loss, torch.full((1, 2), -3.0))
    assert objective.spec.paper == "tests" and objective.spec.summary.startswith("Importance-weighted")
    with pytest.raises(ValueError, match="scale"):
        get_objective(plugin("scaled_pg"), scale=0.0)


@pytest.mark.parametrize(("attr", "message"), [
    ("wrong_signature", "expected fn\\(logp, behaviour_logp, advantages, mask, params, generator=None\\)"),
    ("returns_a_tensor", "returned Tensor, expected ObjectiveOutput"),
    ("sums_the_batch", "per_token_loss must be a \\(2, 3\\) tensor"),
    ("ignores_the_mask", "not 0 where mask is 0"),
    ("not_differentiable", "not differentiable"),
    ("raises", "failed on a \\(2, 3\\) test batch: RuntimeError\\('boom'\\)"),
    ("tensor_metrics", "metrics must be a dict\\[str, float\\]"),
    ("NOT_A_FUNCTION", "is not callable"),
    ("missing", "has no attribute 'missing'"),
])
def test_a_plugin_that_breaks_the_contract_fails_at_load_time(attr, message):
    with pytest.raises(ValueError, match=message):
        get_spec(plugin(attr))


def test_a_plugin_module_that_does_not_import_is_reported():
    with pytest.raises(ValueError, match="cannot import 'no_such_package.losses'"):
        get_objective("no_such_package.losses:fn")


@pytest.mark.parametrize(("shapes", "named"), [
    (((2, 3), (2, 4), (2,), (2, 3)), "behaviour_logp"),
    (((2, 3), (2, 3), (3,), (2, 3)), "advantages"),
    (((2, 3), (2, 3), (2,), (2, 1)), "mask"),
    (((6,), (6,), (6,), (6,)), "logp"),
])
def test_bad_shapes_are_named(shapes, named):
    tensors = [torch.zeros(s) for s in shapes]
    with pytest.raises(ValueError, match=named):
        get_objective("grpo")(*tensors)


def test_output_type_is_the_contract_dataclass():
    out = get_objective("pg")(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1))
    assert isinstance(out, ObjectiveOutput)
