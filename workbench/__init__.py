"""Objective workbench: compare LLM RL policy objectives on your own model and task.

Glossary (README.md's "Glossary" adds where each name shows up). Per completion token t:

- μ: the behaviour probability, what the sampler used to draw the token (its copy of the policy at
  ``rollout_precision``, stale under ``rollout_lag``, truncated under ``sampling_*``), frozen for every update
  made from the batch.
- π_old: the proximal policy, the training weights when a batch's updates begin (TRL's ``old_per_token_logps``
  when the batch serves several updates, else π detached).
- π: the weights being updated. r = π/μ; r_old = π_old/μ, what corrections weight and ``mismatch/*`` measure;
  A the group-relative advantage.
- w: a token's aggregation weight, loss = Σ_t w_t·ℓ_t with ℓ_t = −J_t (times a correction's weight, plus the KL
  term); ``aggregation`` sets it.
- g: a token's gradient weight, ∇J_t = g_t·∇log π_t, read from autograd as g_t = −∂loss/∂log π_t / w_t.
- ρ: Clip-Cov's and KL-Cov's fraction of tokens selected by their covariance.

Across runs:

- arm: one configuration a report compares: an objective, its parameters and its correction, pooled over seeds.
- setting: the values of the sweep's ``space:`` fields an arm runs in.
- family: a group of comparisons declared in the sweep file whose p-values are adjusted together.
- look: a batch of seeds after which every declared comparison is tested.
"""

__version__ = "0.1.0"
