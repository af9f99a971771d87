"""The governor: from settings, holds, the load, input idleness and the GPU's temperature
to a decision (``effective``), and from the decision to knobs (threads, duty cycle, batch,
epochs, CUDA memory cap) applied to the running PPO (``governor``, ``threads``, ``load``,
``idle``, ``gpu``).

May import: errors, base, config, settings, schedule, checkpoint, env, status.
"""
