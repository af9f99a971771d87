"""Sweeps: many governed training runs searching hyperparameters (or seeds) with Optuna.

``perfmode.sweep.space`` is the config's ``sweep:`` section (light: no Optuna import); the
rest imports Optuna and runs, shows and scores studies.
"""
