"""Objective workbench: compare LLM RL policy objectives on your own model and task."""

from . import _quiet

__version__ = "0.1.0"
_quiet.install()
