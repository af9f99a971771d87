"""Checkpoints: run folders and their files (``folders``), weights and optimizer state
without pickles (``io``, ``state``), the old SB3 zips (``legacy``) and the policy file
``evaluate`` reads (``policy_file``). A checkpoint carries numbers, never code.

May import: errors, base, config, settings, schedule.
"""
