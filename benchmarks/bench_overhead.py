"""What perfmode costs over plain SB3: `perfmode.trainer.train` in performance mode vs
`PPO.learn` with the same hyperparameters, batch, epochs, torch threads and envs.

Each measurement runs in a fresh subprocess (so imports, torch threads and caches do not
leak from one into the next), alternating perfmode, plain, perfmode, plain, ...; inside it
only the training call is timed:

- perfmode: `train(config, home)` on a fresh home set to performance (nice 0, so both run
  at the same OS priority). It includes what perfmode does besides learning: building the
  env and model, the governor's ticks, checkpoints every 10k steps and at the end,
  metrics.csv and status.json.
- plain: `PPO(...).learn(N)` on the same vec env (perfmode.trainer.build_vec_env) with the
  performance knobs' batch size, epochs and torch threads. The "plain incl. setup" column
  also times building the market, env and model, which train() does inside its timing;
  "perfmode in learn()" is the part of train() spent inside learn() (the loop with the
  governor, checkpoints and metrics, without the set-up and the final save).

Target: perfmode >= 0.98x the steps/s of plain SB3, compared like for like: train() against
plain including its set-up (constructing the first torch optimizer imports torch._dynamo,
about 1 s here, in SB3 alone as well), and the learn() loops against each other. Ratios use
each column's fastest repeat: on a shared machine noise only ever adds time, so the
minimum is the steadiest estimate of the cost itself (medians are printed too).

Run: .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--timesteps 40960]
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
    from perfmode.config import Config
    from perfmode.home import Home
    from perfmode.settings import SettingsStore
    from perfmode.trainer import GovernedPPO, train

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


def child_plain(timesteps: int) -> dict[str, float]:
    import torch
    from stable_baselines3 import PPO

    from perfmode.config import Config
    from perfmode.env import load_market
    from perfmode.governor import knobs_for
    from perfmode.settings import Mode
    from perfmode.trainer import _hyperparameters, build_vec_env

    config = Config().with_overrides(total_timesteps=timesteps, nice=0)
    knobs = knobs_for(Mode.PERFORMANCE, config)
    torch.set_num_threads(knobs.torch_threads)
    t_setup = time.perf_counter()
    venv = build_vec_env(config, load_market(config.env))
    hyper = {**_hyperparameters(config), "batch_size": knobs.batch_size, "n_epochs": knobs.n_epochs}
    model = PPO(
        "MlpPolicy",
        venv,
        seed=config.training.seed,
        policy_kwargs={"net_arch": list(config.ppo.net_arch)},
        verbose=0,
        **hyper,
    )
    t0 = time.perf_counter()
    model.learn(timesteps)
    t1 = time.perf_counter()
    venv.close()
    assert model.num_timesteps >= timesteps, model.num_timesteps
    return {"seconds": t1 - t0, "with_setup": t1 - t_setup}


def measure(kind: str, timesteps: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--timesteps", str(timesteps)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=40960, help="10 default rollouts")
    parser.add_argument("--child", choices=["perfmode", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_perfmode if args.child == "perfmode" else child_plain
        print(json.dumps(run(args.timesteps)))
        return

    n = args.timesteps
    cols: dict[str, list[float]] = {
        "perfmode train()": [],
        "plain learn()": [],
        "perfmode in learn()": [],
        "plain incl. setup": [],
    }
    names = list(cols)
    print(f"default config, performance knobs, {n:,} timesteps per measurement, seconds")
    print(f"{'repeat':<16}" + "".join(f"{name:>21}" for name in names))
    for i in range(args.repeats):
        p = measure("perfmode", n)
        q = measure("plain", n)
        cols["perfmode train()"].append(p["seconds"])
        cols["perfmode in learn()"].append(p["learn"])
        cols["plain learn()"].append(q["seconds"])
        cols["plain incl. setup"].append(q["with_setup"])
        print(f"{i + 1:<16}" + "".join(f"{cols[name][-1]:>20.2f}s" for name in names))
    median = {name: n / statistics.median(times) for name, times in cols.items()}
    best = {name: n / min(times) for name, times in cols.items()}
    print(f"{'median steps/s':<16}" + "".join(f"{median[name]:>21.0f}" for name in names))
    print(f"{'best steps/s':<16}" + "".join(f"{best[name]:>21.0f}" for name in names))
    print()

    def ratio(a: str, b: str, target: bool = False) -> None:
        r = best[a] / best[b]
        verdict = f"   target >= 0.98x   {'OK' if r >= 0.98 else 'MISSED'}" if target else ""
        print(f"{a + ' / ' + b:<44}{r:>7.3f}x  (medians {median[a] / median[b]:.3f}x){verdict}")

    ratio("perfmode train()", "plain incl. setup", target=True)
    ratio("perfmode in learn()", "plain learn()", target=True)
    ratio("perfmode train()", "plain learn()")


if __name__ == "__main__":
    main()
