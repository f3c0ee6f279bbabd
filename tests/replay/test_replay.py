"""Counterfactual replay (issue 19): kept batches change nothing, replay recomputes what the trainer applied,
every objective reduces to the same gradient on policy, and the token fractions are the closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from runs import tiny_run
from workbench.batches import kept_steps, load_step
from workbench.cli import app
from workbench.config import RunConfig
from workbench.replay import (MU_BINS, Policy, StepReplay, arm_gradients, batch_tokens, make_arms, replay_batches,
                              replay_run, resolve_runs, token_rows)
from workbench.tracking import load_run

# The objectives that reduce to the on-policy gradient A·∇log π at μ = π = π_old (README "Replay").
REDUCING = ("pg", "grpo", "dppo_tv", "dppo_kl", "drpo", "spo", "cispo", "gspo", "sapo", "gpg", "gmpo", "kl_cov",
            "vespo")
RUN = {"objective": "drpo", "objective_params": {"delta": 0.05}, "num_iterations": 2, "max_steps": 3, "seed": 3}
TIMING = ("wall_time", "step_time")  # the only values of a run's record that depend on the clock


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    kept = tiny_run(root, name="kept", tracking={"keep_batches_every": 1}, **RUN)
    plain = tiny_run(root, name="plain", **RUN)
    assert kept.summary["status"] == plain.summary["status"] == "finished"
    return root / "kept", root / "plain"


@pytest.fixture(scope="module")
def policy(runs):
    return Policy(RunConfig.parse(json.loads((runs[0] / "config.json").read_text())))


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def test_keeping_batches_changes_no_metric(runs):
    kept, plain = runs
    assert kept_steps(kept) == [1, 2, 3] and kept_steps(plain) == []
    # Bit for bit: the same JSON numbers at every step (timing aside), and the same histograms.
    assert _rows(kept / "scalars.jsonl") == _rows(plain / "scalars.jsonl")
    assert (kept / "histograms.jsonl").read_text() == (plain / "histograms.jsonl").read_text()
    meta, batches, weights, logged = load_step(kept, 2)
    assert meta["weights"] and weights and len(batches) == meta["micro_batches"] == 1
    assert "old_per_token_logps" in batches[0]  # 2 updates per batch: TRL's π_old was kept
    assert all(g is not None for g in logged)


def test_replay_recomputes_the_weights_the_trainer_applied(runs, policy):
    kept = runs[0]
    replay = replay_run(kept, ["pg", "grpo"], policy=policy)
    own = "own:drpo"  # the run's objective at its own δ
    assert replay.labels == ["pg", "grpo", own]
    check = replay.own_check()
    assert check["steps"] == 3 and check["max_abs_weight"] > 0
    assert check["max_abs_diff"] <= 1e-6 * check["max_abs_weight"]
    # ... and against the run's histograms: the same counts on the bins the trainer logged.
    histograms = {row["step"]: row for row in load_run(kept).histograms if row["name"] == "grad_weight/all"}
    for step in replay.steps:
        logged = histograms[step.step]
        counts, _ = np.histogram(step.weights[own].astype(np.float64), bins=len(logged["counts"]),
                                 range=(logged["edges"][0], logged["edges"][-1]))
        assert counts.tolist() == logged["counts"]
    # The objectives really differ on these batches (π has moved from μ): not everything is the same gradient.
    assert min(np.nanmin(s.cosine) for s in replay.steps) < 0.999


def test_on_policy_every_reducing_objective_gives_the_same_gradient(runs, policy):
    kept = runs[0]
    _, batches, weights, _ = load_step(kept, 2)
    policy.load(weights, "test")
    with torch.no_grad():
        logp, _ = policy.forward(batches[0], top_k=False)
    on_policy = {**batches[0], "sampling_per_token_logps": logp.clone(), "old_per_token_logps": logp.clone()}
    result = replay_batches(policy, [on_policy], make_arms(REDUCING), step=2)
    assert result.norms.min() > 0
    np.testing.assert_allclose(result.cosine, 1.0, atol=1e-6)
    np.testing.assert_allclose(result.norms / result.norms[0], 1.0, atol=1e-6)
    for label in REDUCING:  # per token too: g = A, the on-policy weight
        np.testing.assert_allclose(result.weights[label], result.tokens["adv"], rtol=1e-6, atol=1e-7)


def _hand_made_batch():
    """One token per row: μ in each group, π at known ratios and shifts, both signs of A (and A = 0, left out)."""
    mus, pis, advs = [], [], []
    for mu in (0.003, 0.03, 0.3):
        targets = [mu * r for r in (0.4, 0.85, 0.97, 1.04, 1.15, 2.5)] + [mu + 0.2] + ([mu - 0.2] if mu > 0.2 else [])
        for pi in targets:
            for adv in (1.0, -1.0, 0.0):
                mus.append(mu), pis.append(pi), advs.append(adv)
    mu, pi, adv = (torch.tensor(x, dtype=torch.float64) for x in (mus, pis, advs))
    n = len(mus)
    batch = {"completion_mask": torch.ones(n, 1), "sampling_per_token_logps": mu.log().unsqueeze(1),
             "advantages": adv, "loss_weights": torch.full((n, 1), 1.0 / n, dtype=torch.float64)}
    return batch, pi.log().unsqueeze(1), mu.numpy(), pi.numpy(), adv.numpy()


def _closed_form(name: str, mu: np.ndarray, pi: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """g/A from DESIGN.md's table at the families' defaults."""
    r = pi / mu
    harmful = np.sign(adv * (r - 1))
    if name == "pg":
        return r
    if name == "grpo":
        return np.where(((adv > 0) & (r > 1.2)) | ((adv < 0) & (r < 0.8)), 0.0, r)
    if name == "dppo_tv":
        return np.where(((adv > 0) & (pi - mu > 0.15)) | ((adv < 0) & (mu - pi > 0.15)), 0.0, np.minimum(r, 20.0))
    if name == "drpo":
        return r * (1 - harmful * np.abs(pi - mu) / 0.15)
    if name == "spo":
        return r * (1 - harmful * np.abs(r - 1) / 0.2)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["pg", "grpo", "dppo_tv", "drpo", "spo"])
def test_token_fractions_are_the_closed_forms(name):
    batch, logp, mu, pi, adv = _hand_made_batch()
    logp = logp.requires_grad_()
    arms = make_arms([name])
    g = next(arm_gradients(arms, logp, batch))[0]
    tokens = {k: v.numpy() for k, v in batch_tokens(logp, batch).items()}
    result = StepReplay(step=0, labels=[name], gram=np.zeros((1, 1)), tokens=tokens, weights={name: g.numpy()})
    q = _closed_form(name, mu, pi, adv)
    np.testing.assert_allclose(g.numpy(), (q * adv).astype(np.float32), rtol=1e-5, atol=1e-6)
    rows = {(r["mu"], r["advantage"]): r for r in token_rows(result)}
    for bin_name, low, high in (("all", 0.0, np.inf), *MU_BINS):
        for sign, chosen in (("all", adv != 0), ("A>0", adv > 0), ("A<0", adv < 0)):
            sel = chosen & (mu >= low) & (mu < high)
            row = rows[(bin_name, sign)]
            assert row["tokens"] == sel.sum()
            assert row["frac_changed"] == pytest.approx(np.mean(np.abs(q[sel] - 1) > 0.1), abs=1e-12)
            assert row["frac_flipped"] == pytest.approx(np.mean(q[sel] < 0), abs=1e-12)
            assert row["frac_zero"] == pytest.approx(np.mean(q[sel] == 0), abs=1e-12)
    # The regime the papers argue about, in numbers: on the rarest tokens (μ = 0.003) GRPO's ratio clip zeroes
    # every upward move past 1.2 with A > 0 (1.04 is inside, 1.15 too: 2.5 and +0.2 are out), DPPO's |π − μ| mask only
    # the +0.2 one.
    rare_up = rows[("mu<0.01", "A>0")]
    if name == "grpo":
        assert rare_up["frac_zero"] == pytest.approx(2 / 7)
    if name == "dppo_tv":
        assert rare_up["frac_zero"] == pytest.approx(1 / 7)


def test_cli_replay_is_deterministic_and_refuses_bad_input(runs, tmp_path):
    kept, plain = runs
    cli = CliRunner()
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        result = cli.invoke(app, ["replay", str(kept), "--objectives", "pg,grpo,dppo_tv", "--corrections", "tis",
                                  "--steps", "2,3", "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs.append(out)
    for name in ("replay.json", "tokens.csv", "gradients.csv", "replay.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    summary = json.loads((outs[0] / "replay.json").read_text())
    assert summary["objectives"] == ["pg", "grpo", "dppo_tv", "pg+tis", "grpo+tis", "dppo_tv+tis", "own:drpo"]
    assert summary["steps"] == 2 and summary["own_check"][0]["max_abs_diff"] == 0.0
    # What it was computed from, for a reader to tell whether it is current (the report's section does).
    assert {k: v for k, v in summary["inputs"].items() if k != "batches"} == {
        "objectives": ["pg", "grpo", "dppo_tv"], "corrections": ["tis"], "steps": {str(kept): [2, 3]}}
    for args, words in (([str(plain)], "no kept batches"), ([str(tmp_path / "nothing")], "neither a run folder"),
                        ([str(kept), "--steps", "9"], "step 9 was not kept"),
                        ([str(kept), "--objectives", "nope"], "unknown objective"),
                        ([str(kept), "--corrections", "nope"], "unknown correction")):
        result = cli.invoke(app, ["replay", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, lines)


def test_a_folder_of_runs_finds_the_runs_that_kept_batches(runs):
    assert resolve_runs(runs[0].parent) == [runs[0]]


def test_clip_cov_does_not_reduce_on_policy():
    """Clip-Cov detaches a random max(⌊ρN⌋, 1) tokens whose covariance is in (ω_lo, ω_hi), whatever the shift."""
    logp = torch.tensor([[-0.1, -3.0, -0.2, -2.5]], dtype=torch.float64).T.contiguous().requires_grad_()
    adv = torch.tensor([2.0, -2.0, 2.0, -2.0], dtype=torch.float64)  # Cov = (A − 0)(log π + 1.45): 2.7, 3.1, 2.5, 2.1
    batch = {"completion_mask": torch.ones(4, 1), "sampling_per_token_logps": logp.detach().clone(),
             "advantages": adv, "loss_weights": torch.full((4, 1), 0.25, dtype=torch.float64)}
    g = {arm.label: next(arm_gradients([arm], logp, batch))[0].numpy() for arm in make_arms(["pg", "clip_cov"])}
    np.testing.assert_allclose(g["pg"], adv.numpy())
    assert (g["clip_cov"] == 0).sum() == 1  # one token lost its gradient on policy
    np.testing.assert_allclose(g["clip_cov"][g["clip_cov"] != 0], adv.numpy()[g["clip_cov"] != 0])


def test_luspo_does_not_reduce_on_policy():
    """LUSPO scales each sequence by its length |y_i|: on policy g = |y_i|·A, another direction than A·∇log π."""
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.3, -0.7, 0.0]], dtype=torch.float64).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    batch = {"completion_mask": mask, "sampling_per_token_logps": logp.detach().clone(), "advantages": adv,
             "loss_weights": (mask / mask.sum()).double()}
    g = next(arm_gradients(make_arms(["luspo"]), logp, batch))[0].numpy()
    np.testing.assert_allclose(g, [3.0, 3.0, 3.0, -2.0, -2.0])
