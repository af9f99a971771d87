"""What do the checkpoint checks and the NaN guard cost? Answered with numbers.

1. The NaN guard, per update: the copy of the weights and Adam's state before it and the
   check after it, side by side with the update itself (the default config: net_arch
   [64, 64], a 4,096-step rollout, batch 128, 4 epochs; one torch thread).
2. Opening a checkpoint: ``open_checkpoint`` of one the default config wrote, with every
   check, side by side with the time to build the model that takes it.

Run (say what else ran while measuring: others share the machine):
    .venv/bin/python benchmarks/bench_checkpoint_guard.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from perfmode.checkpoint.folders import open_checkpoint, save_checkpoint
from perfmode.checkpoint.state import capture
from perfmode.config.schema import Config
from perfmode.env import load_market
from perfmode.training import guard
from perfmode.training.trainer import build_vec_env, new_model


def _ms(samples: list[float]) -> str:
    return f"{1e3 * statistics.median(samples):8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = Config()
    venv = build_vec_env(cfg, load_market(cfg.env))
    model = new_model(venv, cfg, "cpu")
    model.learn(2 * cfg.rollout_size)  # Adam's state exists: the snapshot copies all of it

    snapshot, check, update = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        guard.snapshot(model)
        t1 = time.perf_counter()
        guard.problem(model)
        snapshot.append(t1 - t0)
        check.append(time.perf_counter() - t1)
    for _ in range(3):
        t0 = time.perf_counter()
        model.train()  # GovernedPPO.train: the update with its guard
        update.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(
            Path(tmp),
            capture(model, venv),
            {"observation_shape": list(venv.observation_space.shape)},
        )
        opening = []
        for _ in range(max(3, args.repeats // 10)):
            t0 = time.perf_counter()
            open_checkpoint(ckpt.path)
            opening.append(time.perf_counter() - t0)
    building = []
    for _ in range(3):
        t0 = time.perf_counter()
        new_model(venv, cfg, "cpu")
        building.append(time.perf_counter() - t0)
    venv.close()

    params = sum(p.numel() for p in model.policy.parameters())
    print(f"weights: {params:,}; load average {os.getloadavg()[0]:.1f} (other tenants)")
    print(f"{'guard: copy before':<28}{_ms(snapshot)}")
    print(f"{'guard: check after':<28}{_ms(check)}")
    print(f"{'one update, guard included':<28}{_ms(update)}")
    share = (statistics.median(snapshot) + statistics.median(check)) / statistics.median(update)
    print(f"{'guard / update':<28}{100 * share:8.2f} %")
    print(f"{'open_checkpoint, all checks':<28}{_ms(opening)}")
    print(f"{'build the model it goes in':<28}{_ms(building)}")


if __name__ == "__main__":
    main()
