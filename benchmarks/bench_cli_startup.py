"""How long `perfmode set` and `perfmode status` take, start to exit.

Target: a median under 0.3 s on an idle machine. The figures depend on what else runs: the
first line says how many cores the machine has and how busy they were, so a figure taken
on a busy machine is read as such.

Run: .venv/bin/python benchmarks/bench_cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 0.3


def time_command(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count() or 0
    state = "idle" if load < 0.5 else f"busy: {load / max(cores, 1):.0%} of its cores in use"
    return (
        f"{platform.machine()}, {cores} cores, Python {platform.python_version()}; "
        f"load average {load:.2f} over the last minute ({state})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as home:
        base = [sys.executable, "-m", "perfmode"]
        cases = {
            "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
            "perfmode --version": [*base, "--version"],
            "perfmode set performance": [*base, "set", "performance", "--home", home],
            "perfmode status --json": [*base, "status", "--json", "--home", home],
            "perfmode status": [*base, "status", "--home", home],
        }
        print(
            f"{'command':<38}{'median':>10}{'p95':>10}   ({runs} runs; target median < {TARGET_S} s)"
        )
        for name, args in cases.items():
            t = sorted(time_command(args, runs))
            p95 = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
            print(f"{name:<38}{statistics.median(t):>9.3f}s{p95:>9.3f}s")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
