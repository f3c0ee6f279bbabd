"""The TRL pin's guard: every private name workbench.trl_private reads still exists in the installed TRL and is still
read the way it relies on; no other module of workbench reaches TRL's private API; importing workbench changes no
global state (TRL's notices are silenced where a run starts, not at import)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trl

import workbench
from workbench import trl_private as private


def _holder(where: str):
    module, _, name = where.removesuffix(" instance").rpartition(".")
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("where,name", private.PINNED, ids=[f"{w}.{n}" for w, n in private.PINNED])
def test_every_pinned_private_name_still_exists(where, name):
    holder = _holder(where)
    if where.endswith(" instance"):  # set in __init__: building a trainer needs a model, reading its source does not
        found = re.search(rf"self\.{name}\s*=", inspect.getsource(holder.__init__)) is not None
    else:
        found = hasattr(holder, name)
    assert found, (f"TRL {trl.__version__} has no {where}.{name}, which workbench/trl_private.py reads: adapt that "
                   "module before moving the TRL pin in pyproject.toml")


def test_trl_still_applies_the_importance_weight_only_on_its_vllm_path():
    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert 'self.use_vllm and self.vllm_importance_sampling_correction and self.loss_type != "vespo"' in source
    assert 'per_token_loss * inputs["importance_sampling_ratio"]' in source


def test_no_other_module_reaches_trl_private_api():
    package = Path(workbench.__file__).parent
    private_use = re.compile(r"\._get_per_token_logps_and_entropies|\._metrics\b|use_vllm|"
                             r"vllm_importance_sampling_correction|importance_sampling_ratio|trl\.trainer\.utils|"
                             r"super\(\)\._compute_loss|GRPOTrainer\._compute_loss")
    offenders = [f"{path.relative_to(package)}:{n}" for path in package.rglob("*.py") if path.name != "trl_private.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if private_use.search(line)]
    assert offenders == []


def test_importing_workbench_changes_no_environment_and_prints_nothing():
    # The trainer module is imported where a run starts (runner.build_trainer); importing it prints only because
    # TRL's own import does under WANDB_MODE=offline.
    code = ("import json, os; before = dict(os.environ); "
            "import workbench.cli, workbench.runner, workbench.replay, workbench.sweeps.worker, workbench.diagnostics; "
            "print(json.dumps(sorted(k for k in os.environ if os.environ[k] != before.get(k))))")
    env = {k: v for k, v in os.environ.items() if k != "TRL_EXPERIMENTAL_SILENCE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**env, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()  # nothing printed but the answer
    assert [k for k in json.loads(line) if not k.startswith("TORCHINDUCTOR")] == []  # torch's cache dir is not ours
