"""Sweeps: many governed training runs searching hyperparameters (or seeds) with Optuna.

Owns the study (its storage, the workers that ask for trials, run each as a ``perfmode
train`` child and report its validation scores) and how a study is shown; the ``sweep:``
config section itself lives in ``perfmode.config.sweep``. By job: ``storage`` (where a
study lives, retries, the storage's clock), ``study`` (opening it; every read and write of
it, resume and retries), ``runner`` (the worker pool), ``watch`` (one trial's trainer, its
scores and the pruner), ``child`` (that trainer as a process), ``trials`` (a trial's values,
config and run folder), ``show`` (--show, the page, ``sweep:NAME`` checkpoints), ``snapshot`` (a study
outside the home, written for the page).

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation.
"""
