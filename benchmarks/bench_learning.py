"""Will switching modes hurt my training? Answered with numbers.

For each of N seeds, two runs of the same length: one that never switches (quiet
throughout) and one whose settings.json is hand-edited after every update (quiet,
performance, quiet, ...). Done for two configs:

- default: the shipped profiles, which change only resources (CPU share, threads);
- multipliers: the same with the original system's performance profile (batch x2,
  epochs x1.5), as in configs/train_config_gpu_optimized.yaml.

Printed per seed: the final training reward (mean episode reward over the last 5 updates,
from metrics.csv) and the return on the test split (deterministic policy, `perfmode
evaluate`), never-switched vs switched, their paired differences, and whether the default
runs ended with identical weights.

Each run is a fresh subprocess at nice 0. Run:
    .venv/bin/python benchmarks/bench_learning.py [--seeds 3] [--timesteps 81920]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MULTIPLIERS = {"performance": {"batch_size_multiplier": 2.0, "epochs_multiplier": 1.5}}


def child(home: Path, seed: int, timesteps: int, profile: str, switch: bool) -> dict[str, Any]:
    from perfmode.base.home import Home
    from perfmode.config.schema import config_from_mapping
    from perfmode.evaluation.evaluate import evaluate_checkpoint
    from perfmode.settings.store import SettingsStore
    from perfmode.training.trainer import train

    mapping: dict[str, Any] = {
        "training": {"seed": seed, "total_timesteps": timesteps, "nice": 0, "poll_interval": 0.05}
    }
    if profile == "multipliers":
        mapping["modes"] = MULTIPLIERS
    config = config_from_mapping(mapping)
    h = Home(home)
    SettingsStore(h.settings).set_mode("quiet", changed_by="cli")
    stop = threading.Event()

    def flip() -> None:
        seen, mode = 1, "quiet"
        while not stop.is_set():
            rows = len(_rows(h.metrics_file("default")))
            if rows > seen:
                seen, mode = rows, "performance" if mode == "quiet" else "quiet"
                h.settings.write_text(json.dumps({"performance_mode": mode}))
            time.sleep(0.005)

    flipper = threading.Thread(target=flip, daemon=True)
    if switch:
        flipper.start()
    try:
        result = train(config, h)
    finally:
        stop.set()
    rows = _rows(h.metrics_file("default"))
    modes = [r["mode"] for r in rows]
    rewards = [float(r["ep_rew_mean"]) for r in rows if r["ep_rew_mean"]]
    test = evaluate_checkpoint(result.checkpoint)["policy"]
    return {
        "checkpoint": str(result.checkpoint),
        "switches": sum(a != b for a, b in itertools.pairwise(modes)),
        "train_reward": statistics.fmean(rewards[-5:]),
        "test_return": test["total_return"],
    }


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _weights(checkpoint: str) -> dict[str, Any]:
    from perfmode.checkpoint.io import read_weights

    return read_weights(Path(checkpoint) / "policy.pth")


def _max_difference(a: str, b: str) -> float:
    wa, wb = _weights(a), _weights(b)
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def run(home: Path, seed: int, timesteps: int, profile: str, switch: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(home), "--seed", str(seed)]
    cmd += ["--timesteps", str(timesteps), "--profile", profile]
    if switch:
        cmd.append("--switch")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=81920, help="20 default updates")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--switch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, args.timesteps, args.profile, args.switch)))
        return

    print(
        f"{args.seeds} seeds x {{never switch, switch after every update}}, "
        f"{args.timesteps:,} timesteps each, default config otherwise"
    )
    print(
        f"{'profile':<13}{'seed':>5}{'switches':>10}{'train reward':>24}{'test return':>24}"
        f"{'identical':>11}"
    )
    print(f"{'':<28}{'never / switched':>24}{'never / switched':>24}")
    with tempfile.TemporaryDirectory() as tmp:
        for profile in ("default", "multipliers"):
            d_train, d_test, identical = [], [], []
            for seed in range(args.seeds):
                homes = [Path(tmp) / f"{profile}-{seed}-{k}" for k in ("never", "switch")]
                never = run(homes[0], seed, args.timesteps, profile, switch=False)
                switched = run(homes[1], seed, args.timesteps, profile, switch=True)
                diff = _max_difference(never["checkpoint"], switched["checkpoint"])
                identical.append(diff == 0.0)
                d_train.append(switched["train_reward"] - never["train_reward"])
                d_test.append(switched["test_return"] - never["test_return"])
                same = "yes" if diff == 0.0 else f"no ({diff:.1e})"
                print(
                    f"{profile:<13}{seed:>5}{switched['switches']:>10}"
                    f"{never['train_reward']:>12.4f} / {switched['train_reward']:<9.4f}"
                    f"{never['test_return']:>12.2%} / {switched['test_return']:<9.2%}"
                    f"{same:>11}"
                )
            print(
                f"{profile:<13}{'mean paired difference (switched - never):':>42} train "
                f"{statistics.fmean(d_train):+.4f}, test {statistics.fmean(d_test):+.2%}; "
                f"identical weights in {sum(identical)}/{len(identical)} seeds"
            )


if __name__ == "__main__":
    main()
