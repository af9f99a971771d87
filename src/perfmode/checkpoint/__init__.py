"""Checkpoints: run folders and their checkpoint folders (``folders``); a training state as
data (``data``: dataclasses and their JSON-and-arrays form) taken from a live model and put
back (``state``); its files written and read without pickles (``io``), each part read
bounded (``files``) and every tensor and statistic checked against the model it is for
(``checks``), with one error for a bad part (``errors``); the background writer that saves
beside training (``writer``); the old SB3 zips (``legacy``) and the policy file
``evaluate`` reads (``policy_file``). A checkpoint carries numbers, never code.

May import: errors, base, config, settings, schedule.
"""
