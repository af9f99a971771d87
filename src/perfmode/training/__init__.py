"""Training: the trainer that ties config, data, checkpoints and the governor together
(``trainer``) and a run's files around it (``runfiles``); the session around SB3's learn
loop (``session``), its jobs one callback each (``callbacks``: governing, reporting,
checkpointing) and validation scores (``validation``); the fast PPO path (``fastppo``), the
PPO the trainer runs with its OOM retry (``governed``) and the undo of an update that turns
NaN (``guard``); the policy (``policy``); a stop at the next safe point (``stop``); the
command line that starts a trainer (``command``) and ``--seeds``' runs (``seeds``).

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor.
"""
