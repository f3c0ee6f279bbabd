"""π_old reaches the objectives that ask for it, in a real run: TRL's old log-probs when a batch serves
several updates, π itself (detached) at a batch's first update otherwise."""

from __future__ import annotations

from dataclasses import replace

import torch

from runs import tiny_run
from workbench.objectives import registry


def test_the_trainer_hands_pi_old_to_objectives_that_declare_it(tmp_path, monkeypatch):
    seen = []
    spec = registry.get_spec("grpo")
    original = spec.fn

    def spy(logp, behaviour_logp, advantages, mask, params, generator=None, old_logp=None):
        seen.append((logp.detach().clone(), old_logp.clone(), params.trust_region_against))
        return original(logp, behaviour_logp, advantages, mask, params, generator=generator, old_logp=old_logp)

    monkeypatch.setitem(registry._REGISTRY, "grpo", replace(spec, fn=spy))
    result = tiny_run(tmp_path, objective="grpo", objective_params={"trust_region_against": "old"},
                      num_iterations=2, max_steps=2)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    assert len(seen) == 2 and all(against == "old" for *_, against in seen)
    (logp0, old0, _), (logp1, old1, _) = seen
    # Both updates of the batch see the same π_old, the policy before the first update...
    torch.testing.assert_close(old0, old1, rtol=0, atol=0)
    torch.testing.assert_close(old0, logp0, rtol=0, atol=1e-5)
    # ...while π has moved by the second update: the trust region then measures a real shift.
    assert (logp1 - old1).abs().max() > 1e-4


def test_without_old_log_probs_pi_old_is_pi(tmp_path, monkeypatch):
    seen = []
    spec = registry.get_spec("dppo_tv")
    original = spec.fn

    def spy(logp, behaviour_logp, advantages, mask, params, generator=None, old_logp=None):
        seen.append((logp.detach().clone(), old_logp.clone()))
        return original(logp, behaviour_logp, advantages, mask, params, generator=generator, old_logp=old_logp)

    monkeypatch.setitem(registry._REGISTRY, "dppo_tv", replace(spec, fn=spy))
    result = tiny_run(tmp_path, objective="dppo_tv", objective_params={"trust_region_against": "old"}, max_steps=1)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    assert seen and all(torch.equal(logp, old) for logp, old in seen)
