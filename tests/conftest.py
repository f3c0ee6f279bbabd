"""No network here: the hub is offline, W&B writes offline runs, TRL's experimental notice is silenced."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# Helpers shared by the test modules (runs.py, wandb_files.py) import by name, in subprocesses too.
sys.path.insert(0, str(Path(__file__).parent))
