"""The plain-SB3 reference of ``perfmode bench``, in its own process: what a user gets without
perfmode, on the same config.

``PPO("MlpPolicy", VecNormalize(VecMonitor(DummyVecEnv([TradingEnv] * n_envs))))`` with the
config's hyperparameters, torch's default thread count and normal priority (no governor, no
fast path, no checkpoints). The bench starts it early, so its imports overlap the trainer's
start-up: it builds the model, says ``ready`` and waits for a line on stdin (end of file:
the bench is gone, so it quits). Then it times itself from the end of its first cycle
(rollout and update: allocations and caches warm up there) for ``--seconds``, stops, and
tells the bench what it measured as JSON lines in ``--events``:

    {"event": "ready", ...}
    {"event": "measuring", "time": ..., "timesteps": ..., "cpu_seconds": ..., "device": ...}
    {"event": "done", "time": ..., "timesteps": ..., "cpu_seconds": ...}

``time`` is a monotonic clock; ``cpu_seconds`` counts this process and its children (the
env workers of ``training.vec_env: subproc``).

Run by the bench as ``python -m perfmode.bench.reference``; not a user command.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from perfmode.bench.processes import tree_cpu_seconds

PARENT_CHECK_STEPS = 256
"""Env steps between two looks at whether the bench that started us is still there."""


def build_plain_model(config: Any) -> Any:
    """Plain SB3 on the config: its env stack, MlpPolicy, the same hyperparameters."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import (
        DummyVecEnv,
        SubprocVecEnv,
        VecMonitor,
        VecNormalize,
    )

    from perfmode.env import TradingEnv, load_market
    from perfmode.training.trainer import _hyperparameters, pick_device

    t = config.training
    market = load_market(config.env)
    make = functools.partial(TradingEnv, market.train, config.env)
    vec_cls = SubprocVecEnv if t.vec_env == "subproc" else DummyVecEnv
    venv: Any = VecMonitor(vec_cls([make] * t.n_envs))
    if t.normalize:
        venv = VecNormalize(venv, gamma=config.ppo.gamma)
    return PPO(
        "MlpPolicy",
        venv,
        seed=t.seed,
        device=pick_device(t.device)[0],  # the device perfmode trains on: same hardware
        policy_kwargs={"net_arch": list(config.ppo.net_arch)},
        verbose=0,
        **_hyperparameters(config),
    )


def run(config_path: Path, seconds: float, events: Path) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    from perfmode.config.schema import load_config

    model = build_plain_model(load_config(config_path))
    me = psutil.Process()
    parent = os.getppid()
    out = open(events, "a", encoding="utf-8")  # noqa: SIM115  (open for the whole run)

    def emit(event: str, **fields: Any) -> None:
        fields = {
            "event": event,
            "time": time.monotonic(),
            "timesteps": int(model.num_timesteps),
            "cpu_seconds": tree_cpu_seconds(me),
            **fields,
        }
        out.write(json.dumps(fields) + "\n")
        out.flush()

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollouts = 0
            self.deadline = float("inf")

        def _on_rollout_start(self) -> None:
            self.rollouts += 1
            if self.rollouts == 2:  # the first cycle (rollout and update) is warm-up
                emit("measuring", device=str(model.device))
                self.deadline = time.monotonic() + seconds

        def _on_step(self) -> bool:
            if time.monotonic() >= self.deadline:
                emit("done")
                return False
            # An orphan would train forever: stop when the bench is gone.
            return self.n_calls % PARENT_CHECK_STEPS != 0 or os.getppid() == parent

    try:
        emit("ready")
        if not sys.stdin.readline():
            return
        model.learn(total_timesteps=10**12, callback=Clock())
    finally:
        model.get_env().close()
        out.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perfmode.bench.reference")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--events", type=Path, required=True)
    args = parser.parse_args(argv)
    run(args.config, args.seconds, args.events)


if __name__ == "__main__":
    main(sys.argv[1:])
