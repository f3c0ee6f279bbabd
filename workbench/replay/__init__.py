"""Counterfactual replay (``workbench replay``): every objective on the very batches a run trained on.

A run that kept batches (``tracking.keep_batches_every``, see :mod:`workbench.batches`) holds, for each kept
optimizer step, the batch its loss saw (tokens, μ, π_old, advantages, the aggregation's per-token weights)
and the trainable weights just before that update. Replay loads those weights, runs ONE forward as the
trainer does (TRL's fused LM head, the run's temperature and train precision) to get π, and for each
objective (and objective × correction) reads

- the per-token gradient weight g_t = −∂loss/∂log π_t / w_t from autograd, exactly as the trainer's
  histogram hook reads it, whatever produced the loss;
- the gradient of the trainable parameters (one backward each, summed over the step's micro-batches).

From those: the cosine matrix between the objectives' parameter gradients, each gradient's norm relative
to plain ``pg``, and per objective the share of tokens whose g/A differs from the on-policy weight
(g/A = 1: every objective's weight at π = μ) by more than 10 %, flips sign, or is zero, split by μ and by
the advantage's sign.

What replay is not: it measures one update from one state, the same state for every objective. It says
whether and where the objectives push the weights differently on the run's own data, not where training
under each objective would have gone (after one update the batches themselves would differ).

Deterministic: no sampling (Clip-Cov's random draw uses a generator seeded by the run's seed and the step),
so replaying twice gives identical numbers.

Modules, each importing only those before it: inputs (what to replay) · forward (the run's policy, the
trainer's forward) · gradients (g and ∇θ per arm, per step and per run) · statistics (token classes, tables,
the JSON summary) · markdown (replay.md) · figures · output (a replay's files; whether a saved summary is
current).
"""

from __future__ import annotations

from .forward import Policy
from .gradients import RunReplay, StepReplay, arm_gradients, batch_tokens, make_arms, replay_batches, replay_run
from .inputs import parse_corrections, parse_objectives, parse_steps, resolve_runs
from .markdown import cosine_table
from .output import replay_inputs, save_summary, saved_summary, write_replay
from .statistics import MU_BINS, summarise, token_rows

__all__ = ["MU_BINS", "Policy", "RunReplay", "StepReplay", "arm_gradients", "batch_tokens", "cosine_table",
           "make_arms", "parse_corrections", "parse_objectives", "parse_steps", "replay_batches", "replay_inputs",
           "replay_run", "resolve_runs", "save_summary", "saved_summary", "summarise", "token_rows", "write_replay"]
