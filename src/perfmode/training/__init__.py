"""Training: the trainer that ties config, data, checkpoints and the governor together
(``trainer``), the session around SB3's learn loop (``session``), the fast PPO path
(``fastppo``) and the policy (``policy``).

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor.
"""
