"""A run's stability in its summary: collapse_step on hand-made reward curves, max_grad_norm, nonfinite_loss."""

from __future__ import annotations

import json
import math

from workbench.tracking import RunRecorder, collapse_step


def curve(values):
    return [(step, value) for step, value in enumerate(values, start=1)]


def test_a_run_that_learns_never_collapsed():
    assert collapse_step(curve([min(1.0, i / 20) for i in range(60)])) is None


def test_a_dip_that_recovers_is_not_a_collapse():
    dip = [0.1 if 20 <= i < 35 else 0.8 for i in range(60)]
    assert collapse_step(curve(dip)) is None


def test_a_collapse_to_the_end_starts_where_the_average_stays_under_half_the_peak():
    # 0.8 for 30 steps, then 0.05: the 10-step average ending at step s holds 40 − s steps of 0.8, and
    # 0.8·a + 0.05·(10 − a) < 0.4 from a ≤ 4, that is s = 36.
    assert collapse_step(curve([0.8] * 30 + [0.05] * 30)) == 36


def test_a_collapse_after_a_dip_starts_after_the_last_recovery():
    values = [0.8] * 20 + [0.1] * 15 + [0.8] * 15 + [0.0] * 20  # dips, recovers, then 0 from step 51 on
    # the average ending at s ≥ 51 holds 60 − s values of 0.8: under 0.4 once they are at most 4, s = 56.
    assert collapse_step(curve(values)) == 56


def test_no_peak_or_too_few_steps_is_no_collapse():
    assert collapse_step(curve([0.0] * 30)) is None
    assert collapse_step(curve([0.9, 0.0, 0.0])) is None
    assert collapse_step(curve([-0.5] * 10 + [-2.0] * 20)) is None  # a peak ≤ 0 has no half to fall under


def test_steps_are_the_logged_ones():
    rewards = [(step, 0.8 if step <= 60 else 0.0) for step in range(2, 122, 2)]  # every other step logged
    assert collapse_step(rewards) == 72  # averages over 10 logged values: the 6th after the drop ends at step 72


def test_the_summary_records_stability(tmp_path):
    recorder = RunRecorder(tmp_path / "run", {"seed": 0, "objective": "pg"})
    for step, reward in curve([0.8] * 30 + [0.05] * 30):
        recorder.log_scalars(step, {"reward/mean": reward, "loss": 0.1, "grad_norm": 0.5 + step / 100})
    recorder.log_scalars(61, {"loss": math.inf, "grad_norm": math.inf})
    recorder.finish("finished")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["collapse_step"] == 36
    assert summary["max_grad_norm"] == 0.5 + 60 / 100  # the largest finite one
    assert summary["nonfinite_loss"] is True


def test_a_quiet_run_records_no_collapse(tmp_path):
    recorder = RunRecorder(tmp_path / "run", {"seed": 0})
    recorder.log_scalars(0, {"eval/accuracy": 0.1})
    recorder.finish("finished")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["collapse_step"] is None and summary["max_grad_norm"] is None and summary["nonfinite_loss"] is False
