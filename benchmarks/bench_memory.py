"""Peak memory (max RSS) of `perfmode train` on the default config, in performance mode.

Each figure is the peak of one process alone: a fresh helper interpreter runs the command
as its only child, waits for it and prints its own getrusage(RUSAGE_CHILDREN).ru_maxrss
(KiB on Linux), so nothing else this benchmark runs is mixed in. For context, the floor
every trainer pays, `python -c "import torch, stable_baselines3"`, is measured first the
same way.

Run: .venv/bin/python benchmarks/bench_memory.py [--timesteps 50000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

# Runs argv[1:] as its only child and prints that child's peak RSS in KiB.
HELPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_kib(command: list[str]) -> tuple[int, float]:
    """Peak RSS of ``command`` (KiB) and its wall time (s), in a fresh helper process."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", HELPER, *command], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> None:
    if not sys.platform.startswith("linux"):
        sys.exit("ru_maxrss is in KiB only on Linux (bytes on macOS); run this on Linux")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=50000)
    args = parser.parse_args()
    perfmode = [sys.executable, "-m", "perfmode"]
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(
            [*perfmode, "set", "performance", "--home", home], check=True, capture_output=True
        )
        floor, t_floor = peak_kib([sys.executable, "-c", "import torch, stable_baselines3"])
        train, t_train = peak_kib(
            [*perfmode, "train", "--timesteps", str(args.timesteps), "--home", home]
        )
    print(f"{'process':<46}{'peak RSS':>12}{'wall':>9}")
    print(
        f"{'python -c import torch, stable_baselines3':<46}{floor / 1024:>8.1f} MiB{t_floor:>8.1f}s"
    )
    label = f"perfmode train --timesteps {args.timesteps} (perf.)"
    print(f"{label:<46}{train / 1024:>8.1f} MiB{t_train:>8.1f}s")
    print(f"{'  above the import floor':<46}{(train - floor) / 1024:>8.1f} MiB")


if __name__ == "__main__":
    main()
