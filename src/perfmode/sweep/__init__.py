"""Sweeps: many governed training runs searching hyperparameters (or seeds) with Optuna.

Owns the study (its storage, the workers that ask for trials, run each as a ``perfmode
train`` child and report its validation scores) and how a study is shown; the ``sweep:``
config section itself lives in ``perfmode.config.sweep``.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation.
"""
