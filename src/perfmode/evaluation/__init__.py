"""``perfmode evaluate``: a trained policy run over the test rows (``evaluate``) and the
pictures of it and of ``perfmode bench`` (``plot``).

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training.
"""
