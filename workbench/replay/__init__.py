"""Counterfactual replay (``workbench replay``): every objective on the very batches a run trained on.

core: what to replay, one forward per kept step, one backward per objective (× correction), the tables ·
figures: the cosine matrix, the token table and one step's tokens · output: a replay's files.
"""

from __future__ import annotations

from .core import (MU_BINS, Policy, RunReplay, StepReplay, arm_gradients, batch_tokens, cosine_table, make_arms,
                   parse_corrections, parse_objectives, parse_steps, replay_batches, replay_run, resolve_runs,
                   summarise, token_rows)
from .output import write_replay

__all__ = ["MU_BINS", "Policy", "RunReplay", "StepReplay", "arm_gradients", "batch_tokens", "cosine_table",
           "make_arms", "parse_corrections", "parse_objectives", "parse_steps", "replay_batches", "replay_run",
           "resolve_runs", "summarise", "token_rows", "write_replay"]
