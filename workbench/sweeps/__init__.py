"""Optuna sweeps: spec (the file) · space (search spaces) · study (storage, budget, claims, resume) ·
trial (one trial over its seeds) · launch (workers, progress) · status (tables) · store (the contract
with the reports). Import the module you need: this package imports nothing, so reports stay light.
"""
