"""TRL's own losses are specs of their own kind in the objective registry, and only the registry reads ``trl:``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import workbench
from workbench.config import ConfigError, RunConfig
from workbench.objectives import available_trl_losses, get_objective, get_spec
from workbench.objectives.registry import TRL_LOSSES


def test_a_trl_loss_is_a_spec_of_kind_trl_with_the_grpo_config_fields_that_select_it():
    spec = get_spec("trl:gspo")
    assert spec.kind == "trl" and spec.trl_args == {"loss_type": "grpo", "importance_sampling_level": "sequence"}
    assert not spec.uses_top_k
    assert get_spec("grpo").kind == "workbench" and get_spec("grpo").trl_args == {}
    assert available_trl_losses() == [f"trl:{loss}" for loss in TRL_LOSSES]
    with pytest.raises(ValueError, match="TRL's own loss"):
        get_objective("trl:dapo")
    with pytest.raises(ConfigError, match=r"objective: unknown TRL loss 'trl:nope'; expected trl:grpo\|trl:dapo"):
        RunConfig.parse({"objective": "trl:nope"})
    assert RunConfig.parse({"objective": "trl:dapo"}).top_logprobs == 0


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of every string constant that is not a docstring."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_only_the_registry_reads_the_trl_prefix():
    package = Path(workbench.__file__).parent
    registry = package / "objectives" / "registry.py"
    offenders = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py")) if path != registry
                 for line, value in _string_constants(ast.parse(path.read_text())) if value.startswith("trl:")]
    assert offenders == [], "ask the objective's spec (get_spec(name).kind == 'trl') instead of parsing 'trl:'"
    assert any(value == "trl:" for _, value in _string_constants(ast.parse(registry.read_text())))
