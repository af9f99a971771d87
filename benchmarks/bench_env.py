"""Raw speed of the trading environment: one env, random actions, steps per second.

Target: >= 100k steps/s on one core, so the env is never what a trainer waits for
(PPO's policy forward pass costs far more per step).

Run: .venv/bin/python benchmarks/bench_env.py [--steps 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from perfmode.env import EnvConfig, TradingEnv, load_market


def run(env: TradingEnv, steps: int, next_action: Callable[[int], object]) -> float:
    """Steps per second over ``steps`` steps, resetting when an episode ends."""
    env.reset(seed=0)
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(next_action(i))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=EnvConfig.window)
    args = parser.parse_args()
    cfg = EnvConfig(window=args.window)
    env = TradingEnv(load_market(cfg).train, cfg)
    print(
        f"TradingEnv, window {cfg.window}, episode_length {cfg.episode_length}, "
        f"observation {env.observation_space.shape}, {args.steps:,} steps"
    )

    drawn = np.random.default_rng(0).integers(0, cfg.position_levels, args.steps)
    cases: dict[str, Callable[[int], object]] = {
        # What the env itself costs: actions drawn up front, as a vector env hands them in.
        "env.step, pre-drawn random actions": lambda i: drawn[i],
        # Plus gymnasium's per-call sampling, which costs about as much as the step itself.
        "env.step + action_space.sample()": lambda _i: env.action_space.sample(),
    }
    for name, next_action in cases.items():
        print(f"{name:<40}{run(env, args.steps, next_action):>12,.0f} steps/s")


if __name__ == "__main__":
    main()
