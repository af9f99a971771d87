"""How long `perfmode set` and `perfmode status` take, start to exit (target: < 0.3 s).

Run: .venv/bin/python benchmarks/bench_cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def time_command(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as home:
        base = [sys.executable, "-m", "perfmode"]
        cases = {
            "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
            "perfmode set performance": [*base, "set", "performance", "--home", home],
            "perfmode status --json": [*base, "status", "--json", "--home", home],
        }
        print(f"{'command':<38}{'median':>10}{'p95':>10}   ({runs} runs)")
        for name, args in cases.items():
            t = sorted(time_command(args, runs))
            p95 = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
            print(f"{name:<38}{statistics.median(t):>9.3f}s{p95:>9.3f}s")


if __name__ == "__main__":
    main()
