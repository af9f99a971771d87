"""perfmode against plain SB3: `perfmode train` in performance mode vs `PPO.learn` as SB3's
users run it, on the default config and the same hyperparameters, in steady state.

- perfmode: `train(config, home)` on a fresh home set to performance (nice 0, so both run at
  the same OS priority), with everything `perfmode train` does besides learning: governor
  ticks, the thread trial, checkpoints every 10k steps (written in the background), metrics
  and status.json. Its steady state is read from metrics.csv, as a user would: steps over
  time of the update cycles after the first WARMUP_ROWS (the first update and the thread
  trial); the cycles include the checkpoint stalls.
- the same with checkpoints written in the foreground (as before they moved to a thread),
  to show what the background writer saves.
- plain SB3: `PPO("MlpPolicy", VecNormalize(VecMonitor(DummyVecEnv([TradingEnv] * 8))))`
  with the same hyperparameters; once with torch's default threads (what a user of plain
  SB3 gets) and once with 1 thread (plain SB3 at its best on a small MLP). Its steady state
  is timed the same way: from the start of rollout WARMUP_ROWS + 1 to the end.

Per checkpoint: the foreground stall (what training waits for: the state copied and the
thread started, or the whole write in the foreground variant) and the background write
(serialise, fsync, rename, prune), in ms.

Each measurement is a fresh subprocess, alternating, so imports, threads and caches do not
leak between them. Both learn the same weights (tests/test_fast_path.py).

Target: perfmode >= 1.5x plain SB3's steps/s at default threads (medians), goal 2x.

Run: .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--timesteps 81920]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARMUP_ROWS = 4


def _steady(rows: list[tuple[int, float]]) -> float:
    """Steps/s over (timesteps, fps) rows past the warm-up: total steps over total time."""
    steps = seconds = 0.0
    previous = rows[WARMUP_ROWS - 1][0]
    for timesteps, fps in rows[WARMUP_ROWS:]:
        steps += timesteps - previous
        seconds += (timesteps - previous) / fps
        previous = timesteps
    return steps / seconds


def child_perfmode(timesteps: int, foreground: bool) -> dict[str, Any]:
    from perfmode.base.home import Home
    from perfmode.checkpoint.writer import BackgroundWriter
    from perfmode.config.schema import Config
    from perfmode.settings.store import SettingsStore
    from perfmode.training.callbacks import CheckpointingCallback
    from perfmode.training.trainer import train

    # Timing wrappers only (behaviour unchanged): what each checkpoint costs, and where.
    stall: list[float] = []
    background: list[float] = []
    in_bg = CheckpointingCallback.save_in_background
    run = BackgroundWriter._run

    def timed_submit(self: Any, state: Any) -> None:
        t = time.perf_counter()
        if foreground:
            self.save(self.model, state)
        else:
            in_bg(self, state)
        stall.append(time.perf_counter() - t)

    def timed_run(self: Any, *args: Any) -> None:
        t = time.perf_counter()
        run(self, *args)
        background.append(time.perf_counter() - t)

    CheckpointingCallback.save_in_background = timed_submit  # type: ignore[method-assign]
    BackgroundWriter._run = timed_run  # type: ignore[method-assign]
    config = Config().with_overrides(total_timesteps=timesteps, nice=0)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        SettingsStore(home.settings).set_mode("performance", changed_by="cli")
        t0 = time.perf_counter()
        result = train(config, home)
        seconds = time.perf_counter() - t0
        with open(home.metrics_file(), newline="") as f:
            rows = [(int(r["timesteps"]), float(r["fps"])) for r in csv.DictReader(f)]
    assert result.timesteps >= timesteps, result
    return {
        "steady": _steady(rows),
        "whole": result.timesteps / seconds,
        "stall_ms": [round(s * 1000, 2) for s in stall],
        "background_ms": [round(s * 1000, 2) for s in background],
    }


def child_plain(timesteps: int, threads: int | None) -> dict[str, Any]:
    """Plain SB3 as its users run it: MlpPolicy on VecNormalize(VecMonitor(DummyVecEnv))."""
    import functools

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    from perfmode.config.schema import Config
    from perfmode.env import TradingEnv, load_market
    from perfmode.training.trainer import _hyperparameters

    config = Config().with_overrides(total_timesteps=timesteps, nice=0)
    if threads is not None:
        torch.set_num_threads(threads)
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
    starts: list[tuple[float, int]] = []

    class Clock(BaseCallback):
        def _on_rollout_start(self) -> None:
            starts.append((time.perf_counter(), self.model.num_timesteps))

        def _on_step(self) -> bool:
            return True

    t0 = time.perf_counter()
    model.learn(timesteps, callback=Clock())
    t1 = time.perf_counter()
    venv.close()
    assert model.num_timesteps >= timesteps, model.num_timesteps
    t_start, s_start = starts[WARMUP_ROWS]
    return {
        "steady": (model.num_timesteps - s_start) / (t1 - t_start),
        "whole": model.num_timesteps / (t1 - t0),
        "threads": torch.get_num_threads(),
    }


def measure(kind: str, timesteps: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--timesteps", str(timesteps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


RUNS = {
    "perfmode train": "perfmode",
    "ckpt in foreground": "perfmode-foreground",
    "SB3, default threads": "plain",
    "SB3, 1 thread": "plain-1",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=81920, help="20 default rollouts")
    parser.add_argument("--child", choices=sorted(RUNS.values()), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind = args.child
        result = (
            child_perfmode(args.timesteps, foreground=kind.endswith("foreground"))
            if kind.startswith("perfmode")
            else child_plain(args.timesteps, 1 if kind == "plain-1" else None)
        )
        print(json.dumps(result))
        return

    n = args.timesteps
    steady: dict[str, list[float]] = {name: [] for name in RUNS}
    whole: dict[str, list[float]] = {name: [] for name in RUNS}
    stall: dict[str, list[float]] = {"perfmode": [], "perfmode-foreground": []}
    background: list[float] = []
    print(
        f"default config, {n:,} timesteps per run, steady state (after {WARMUP_ROWS} update "
        "cycles), steps/s; perfmode in performance mode, checkpoints every 10,000 steps"
    )
    print(f"{'repeat':<8}" + "".join(f"{name:>22}" for name in RUNS))
    for i in range(args.repeats):
        for name, kind in RUNS.items():
            r = measure(kind, n)
            steady[name].append(r["steady"])
            whole[name].append(r["whole"])
            if kind in stall:
                stall[kind] += r["stall_ms"]
                background += r["background_ms"]
        print(f"{i + 1:<8}" + "".join(f"{steady[name][-1]:>22,.0f}" for name in RUNS))
    med = {name: statistics.median(v) for name, v in steady.items()}
    print(f"{'median':<8}" + "".join(f"{med[name]:>22,.0f}" for name in RUNS))
    print(
        f"{'whole':<8}"
        + "".join(f"{statistics.median(whole[name]):>22,.0f}" for name in RUNS)
        + "   (whole run incl. start-up and warm-up; plain SB3's set-up not counted)"
    )
    print()
    ours = "perfmode train"
    for name in ("SB3, default threads", "SB3, 1 thread"):
        r = med[ours] / med[name]
        verdict = "OK" if r >= 1.5 else "MISSED"
        print(f"perfmode train / plain {name:<22}{r:>6.2f}x   target >= 1.5x (goal 2x)  {verdict}")
    r = med[ours] / med["ckpt in foreground"]
    print(f"perfmode train / the same, checkpoints in the foreground   {r:>6.2f}x")
    print()

    def ms(values: list[float]) -> str:
        if not values:
            return "none"
        return f"median {statistics.median(values):.1f} ms, max {max(values):.1f} ms"

    print(f"per checkpoint ({len(stall['perfmode'])} background, ", end="")
    print(f"{len(stall['perfmode-foreground'])} foreground):")
    print(f"  background writer: training waits {ms(stall['perfmode'])}")
    print(f"                     the write in its thread takes {ms(background)}")
    print(f"  foreground write:  training waits {ms(stall['perfmode-foreground'])}")


if __name__ == "__main__":
    main()
