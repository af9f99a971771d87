"""perfmode against plain SB3: `perfmode.training.trainer.train` in performance mode vs `PPO.learn`
as SB3's users run it, on the default config and the same hyperparameters.

- perfmode: `train(config, home)` on a fresh home set to performance (nice 0, so both run at
  the same OS priority): its fast path (TradingVecEnv, LeanMlpPolicy, foreach Adam), the
  measured thread count, and everything it does besides learning (building the env and
  model, governor ticks, checkpoints every 10k steps and at the end, metrics, status.json).
- plain SB3: `PPO("MlpPolicy", VecNormalize(VecMonitor(DummyVecEnv([TradingEnv] * 8))))`
  with the same hyperparameters; once with torch's default threads (all cores: what a user
  of plain SB3 gets) and once with 1 thread (plain SB3 at its best on a small MLP). Only its
  `learn()` is timed: the comparison is generous to SB3.

Both learn the same weights (tests/test_fast_path.py). Each measurement is a fresh
subprocess, alternating, so imports, threads and caches do not leak between them.

Target: perfmode >= 1.5x plain SB3's steps/s (medians).

Run: .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--timesteps 81920]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def child_perfmode(timesteps: int) -> dict[str, float]:
    from perfmode.base.home import Home
    from perfmode.config.schema import Config
    from perfmode.settings.store import SettingsStore
    from perfmode.training.governed import GovernedPPO
    from perfmode.training.trainer import train

    # Only to see how train()'s time splits: the time spent inside learn() (behaviour unchanged).
    inside: list[float] = []
    learn = GovernedPPO.learn

    def timed_learn(self: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return learn(self, *args, **kwargs)
        finally:
            inside.append(time.perf_counter() - t)

    GovernedPPO.learn = timed_learn  # type: ignore[method-assign]
    config = Config().with_overrides(total_timesteps=timesteps, nice=0)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        SettingsStore(home.settings).set_mode("performance", changed_by="cli")
        t0 = time.perf_counter()
        result = train(config, home)
        seconds = time.perf_counter() - t0
    assert result.timesteps >= timesteps, result
    return {"seconds": seconds, "learn": sum(inside)}


def child_plain(timesteps: int, threads: int | None) -> dict[str, float]:
    """Plain SB3 as its users run it: MlpPolicy on VecNormalize(VecMonitor(DummyVecEnv))."""
    import functools

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    from perfmode.config.schema import Config
    from perfmode.env import TradingEnv, load_market
    from perfmode.training.trainer import _hyperparameters

    config = Config().with_overrides(total_timesteps=timesteps, nice=0)
    if threads is not None:
        torch.set_num_threads(threads)
    t_setup = time.perf_counter()
    make = functools.partial(TradingEnv, load_market(config.env).train, config.env)
    venv = VecNormalize(VecMonitor(DummyVecEnv([make] * config.training.n_envs)))
    model = PPO(
        "MlpPolicy",
        venv,
        seed=config.training.seed,
        policy_kwargs={"net_arch": list(config.ppo.net_arch)},
        verbose=0,
        **_hyperparameters(config),
    )
    t0 = time.perf_counter()
    model.learn(timesteps)
    t1 = time.perf_counter()
    venv.close()
    assert model.num_timesteps >= timesteps, model.num_timesteps
    return {"seconds": t1 - t0, "with_setup": t1 - t_setup, "threads": torch.get_num_threads()}


def measure(kind: str, timesteps: int) -> dict[str, float]:
    child, _, threads = kind.partition(":")
    cmd = [sys.executable, __file__, "--child", child, "--timesteps", str(timesteps)]
    if threads:
        cmd += ["--threads", threads]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=81920, help="20 default rollouts")
    parser.add_argument("--child", choices=["perfmode", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (
            child_perfmode(args.timesteps)
            if args.child == "perfmode"
            else child_plain(args.timesteps, args.threads)
        )
        print(json.dumps(result))
        return

    n = args.timesteps
    runs = {
        "perfmode train()": "perfmode",
        "plain SB3, default threads": "plain",
        "plain SB3, 1 thread": "plain:1",
    }
    secs: dict[str, list[float]] = {name: [] for name in runs}
    learn: list[float] = []  # perfmode's time inside learn(), like plain SB3's
    setup: list[float] = []
    print(
        f"default config, {n:,} timesteps per measurement, seconds (perfmode in performance mode)"
    )
    print(f"{'repeat':<8}" + "".join(f"{name:>28}" for name in runs))
    for i in range(args.repeats):
        for name, kind in runs.items():
            r = measure(kind, n)
            secs[name].append(r["seconds"])
            if kind == "perfmode":
                learn.append(r["learn"])
            if kind == "plain":
                setup.append(r["with_setup"] - r["seconds"])
        print(f"{i + 1:<8}" + "".join(f"{secs[name][-1]:>27.2f}s" for name in runs))
    median = {name: n / statistics.median(t) for name, t in secs.items()}
    best = {name: n / min(t) for name, t in secs.items()}
    print(f"{'median':<8}" + "".join(f"{median[name]:>20,.0f} steps/s" for name in runs))
    print(f"{'best':<8}" + "".join(f"{best[name]:>20,.0f} steps/s" for name in runs))
    print()
    ours = "perfmode train()"
    ours_learn, best_learn = n / statistics.median(learn), n / min(learn)
    print(f"perfmode inside learn()   median {ours_learn:,.0f} steps/s, best {best_learn:,.0f}")
    print()
    for name in list(runs)[1:]:
        for what, mine, my_best in (
            ("learn() vs learn()", ours_learn, best_learn),
            ("whole train() vs learn()", median[ours], best[ours]),
        ):
            r = mine / median[name]
            print(
                f"perfmode / {name:<28}{what:<26}{r:>6.2f}x (best {my_best / best[name]:.2f}x)"
                f"   target >= 1.5x   {'OK' if r >= 1.5 else 'MISSED'}"
            )
    print(
        f"(whole train() includes perfmode's set-up, checkpoints, metrics and status; plain "
        f"SB3's set-up, {statistics.median(setup):.1f} s, is never counted)"
    )


if __name__ == "__main__":
    main()
