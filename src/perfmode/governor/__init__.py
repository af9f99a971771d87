"""The governor: from settings, holds, the load, input idleness and the GPU's temperature
to a decision (``effective``), and from the decision to knobs (threads, duty cycle, batch,
epochs, CUDA memory cap) applied to the running PPO (``governor``).

What it senses: other programs' load (``load``) and input idleness (``idle``), bundled with
``auto``'s state (``sensors``); the GPU's health and temperature guard (``gpu``). What it
applies: torch threads chosen by measurement (``threads``), the duty cycle (``duty``) and
the knobs that act at once (``appliers``). The home's budget: which of a home's runs train
and with how much (``budget``), read from their status files (``peers``), one trainer's
share of it (``homebudget``). Its sections of status.json: ``report``.

May import: errors, base, config, settings, schedule, checkpoint, env, status.
"""
