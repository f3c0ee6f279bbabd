"""Objective workbench: compare LLM RL policy objectives on your own model and task."""

__version__ = "0.1.0"
