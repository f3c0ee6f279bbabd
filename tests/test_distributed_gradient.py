"""Two processes (torchrun, DDP over gloo) against one on the same global batch: same gradient, same diagnostics.

For grpo and drpo and every aggregation, one optimizer step on fixed completions (tests/distributed_steps.py):
the normaliser and DDP's averaging must give the 1-process gradient, with and without gradient accumulation,
and the main process must log what one process logs (diagnostics gathered from both ranks).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distributed_steps import CASES, run_cases

pytestmark = pytest.mark.launch

PROMPTS = 4  # the global batch: 4 prompts × 4 generations
SCALARS = ("loss", "tv/mean", "tv/max", "ratio/mean", "frac/off_policy", "entropy/mean", "reward/mean",
           "behaviour/frac_rare", "behaviour/frac_very_rare", "behaviour/median_prob")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).parent / "distributed_steps.py"), str(out), str(PROMPTS // 2), "1", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        one = run_cases(PROMPTS, [1], tmp / "one")  # meanwhile, the reference in this process
        log, _ = launch.communicate(timeout=300)
    finally:
        launch.kill()  # no-op once it exited; a hang must not outlive the test
    assert launch.returncode == 0, log[-3000:]
    return one, torch.load(out, weights_only=False)


@pytest.mark.parametrize("accumulation", [1, 2])
@pytest.mark.parametrize("objective, aggregation", CASES)
def test_two_processes_step_with_the_one_process_gradient(both, objective, aggregation, accumulation):
    one, two = both
    reference = one[(objective, aggregation, 1)]["gradient"]
    gradient = two[(objective, aggregation, accumulation)]["gradient"]
    assert set(gradient) == set(reference)
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in reference.values()))
    assert norm > 1e-4, "the fixed batch gives no gradient: the comparison would prove nothing"
    for name, g in reference.items():
        torch.testing.assert_close(gradient[name], g, rtol=1e-4, atol=1e-6 * float(norm), msg=name)


@pytest.mark.parametrize("objective, aggregation", CASES)
def test_two_processes_log_the_one_process_diagnostics(both, objective, aggregation):
    one, two = both
    ref, got = one[(objective, aggregation, 1)], two[(objective, aggregation, 1)]
    names = [k for k in ref["scalars"] if k in SCALARS or k.startswith("frac/")]
    assert {"tv/max", "behaviour/median_prob", "frac/off_policy"} <= set(names)
    for name in names:
        assert got["scalars"][name] == pytest.approx(ref["scalars"][name], rel=1e-5, abs=1e-7), name
    # Histograms bin every rank's tokens (not the main one's alone), with and without accumulation.
    for accumulation in (1, 2):
        hist = two[(objective, aggregation, accumulation)]["histograms"]
        assert hist == ref["histograms"], accumulation
    assert sum(ref["histograms"]["grad_weight/all"]) > 0
