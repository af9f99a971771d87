"""Quiet vs performance, side by side in one trainer: steps/s and CPU cores per mode.

One `perfmode train` on the default config runs for the whole benchmark; after a warm-up
in quiet mode the mode alternates (performance, quiet, performance, ...) every --period
seconds for --cycles full cycles, so both modes see the same machine load. The figures come
from the run's metrics.csv (one row per PPO update): the warm-up rows and the first row
after every switch (its update straddles the switch) are left out.

Then the same again while another program spins one core at normal priority (a busy
desktop), so the two situations print side by side.

Targets: performance >= 2x the steps/s of quiet with nothing else running and >= 1.5x
with the busy program; performance under that load keeps >= 80% of its unloaded steps/s;
quiet's CPU use within +-10% of its share (cpu_share x torch_threads cores, 0.5 x 1).

Run: .venv/bin/python benchmarks/bench_modes.py [--cycles 3] [--period 15] [--warmup 10]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainer import set_mode, start_quiet

from perfmode.base.modes import Mode
from perfmode.config.schema import Config
from perfmode.governor.governor import knobs_for


def segments(rows: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Consecutive rows of the same mode, in order."""
    out: list[list[dict[str, str]]] = []
    for row in rows:
        if out and out[-1][0]["mode"] == row["mode"]:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def measure(cycles: int, period: float, warmup: float) -> dict[str, dict[str, float]]:
    """One trainer alternating the modes; per mode: updates, batch, epochs, steps/s, cores."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        trainer = start_quiet(home)
        try:
            time.sleep(warmup)
            for _ in range(cycles):
                for mode in ("performance", "quiet"):
                    set_mode(home, mode)
                    time.sleep(period)
        finally:
            trainer.stop()
        with open(home / "runs" / "default" / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))

    kept: dict[str, list[dict[str, str]]] = {"quiet": [], "performance": []}
    for seg in segments(rows)[1:]:  # the first segment is the warm-up
        kept[seg[0]["mode"]].extend(seg[1:])  # seg[0] straddles the switch

    def mean(rows: list[dict[str, str]], column: str) -> float:
        values = [float(r[column]) for r in rows]
        return statistics.fmean(values) if values else float("nan")

    return {
        mode: {
            "updates": len(r),
            "fps": mean(r, "fps"),
            "cpu_cores": mean(r, "cpu_cores"),
        }
        for mode, r in kept.items()
    }


def start_burner() -> subprocess.Popen[bytes]:
    """Another program spinning one core at normal priority, as a busy desktop has."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3, help="performance+quiet pairs (>= 2)")
    parser.add_argument("--period", type=float, default=15.0, help="seconds in each mode")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of quiet first")
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")

    idle = measure(args.cycles, args.period, args.warmup)
    burner = start_burner()
    try:
        busy = measure(args.cycles, args.period, args.warmup)
    finally:
        burner.kill()
        burner.wait()

    q = knobs_for(Mode.QUIET, Config())
    share = q.cpu_share * (q.torch_threads or 1)
    print(
        f"default config, {args.cycles} cycles of {args.period:g} s per mode after "
        f"{args.warmup:g} s warm-up, in one trainer; then the same with one other program "
        "spinning a core at normal priority"
    )
    print(
        f"{'situation':<22}{'quiet steps/s':>14}{'cores':>7}{'performance':>13}{'cores':>7}"
        f"{'perf/quiet':>12}{'target':>9}"
    )
    for name, res, target in (("nothing else running", idle, 2.0), ("one busy program", busy, 1.5)):
        ratio = res["performance"]["fps"] / res["quiet"]["fps"]
        print(
            f"{name:<22}{res['quiet']['fps']:>14,.0f}{res['quiet']['cpu_cores']:>7.2f}"
            f"{res['performance']['fps']:>13,.0f}{res['performance']['cpu_cores']:>7.2f}"
            f"{ratio:>11.2f}x{'>= ' + format(target, '.1f') + 'x':>9}  "
            f"{'OK' if ratio >= target else 'MISSED'}"
        )
    kept = busy["performance"]["fps"] / idle["performance"]["fps"]
    dev = (idle["quiet"]["cpu_cores"] - share) / share
    print()
    print(
        f"performance under load / unloaded  {kept:>6.0%}   target >= 80%   "
        f"{'OK' if kept >= 0.8 else 'MISSED'}"
    )
    print(
        f"quiet cpu vs its share             {dev:>+6.1%}   target within +-10% of "
        f"{q.cpu_share:g} x {q.torch_threads} = {share:g} cores   "
        f"{'OK' if abs(dev) <= 0.10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
