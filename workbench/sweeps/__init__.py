"""Optuna sweeps: spec (the file) · space (search spaces) · study (storage, budget, claims, resume) ·
trial (one trial over its seeds) · launch (workers, progress) · worker (one worker process) · stop (SIGINT/SIGTERM) ·
status (tables) · store (the contract with the reports) · optuna_private (every use of Optuna's private API).
Import the module you need: this package imports nothing, so reports stay light.
"""
