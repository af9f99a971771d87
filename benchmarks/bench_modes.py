"""Quiet vs performance, side by side in one trainer: steps/s and CPU cores per mode.

One `perfmode train` on the default config runs for the whole benchmark; after a warm-up
in quiet mode the mode alternates (performance, quiet, performance, ...) every --period
seconds for --cycles full cycles, so both modes see the same machine load. The figures come
from the run's metrics.csv (one row per PPO update): the warm-up rows and the first row
after every switch (its update straddles the switch) are left out.

Targets: performance >= 2x the steps/s of quiet; quiet's CPU use within +-10% of its share
(cpu_share x torch_threads cores, 0.5 x 1 by default).

Run: .venv/bin/python benchmarks/bench_modes.py [--cycles 3] [--period 15] [--warmup 10]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainer import set_mode, start_quiet

from perfmode.config import Config
from perfmode.governor import knobs_for
from perfmode.settings import Mode


def segments(rows: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Consecutive rows of the same mode, in order."""
    out: list[list[dict[str, str]]] = []
    for row in rows:
        if out and out[-1][0]["mode"] == row["mode"]:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3, help="performance+quiet pairs (>= 2)")
    parser.add_argument("--period", type=float, default=15.0, help="seconds in each mode")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of quiet first")
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        trainer = start_quiet(home)
        try:
            time.sleep(args.warmup)
            for _ in range(args.cycles):
                for mode in ("performance", "quiet"):
                    set_mode(home, mode)
                    time.sleep(args.period)
        finally:
            trainer.stop()
        with open(home / "runs" / "default" / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))

    segs = segments(rows)
    switches = len(segs) - 1
    kept: dict[str, list[dict[str, str]]] = {"quiet": [], "performance": []}
    for seg in segs[1:]:  # segs[0] is the warm-up
        kept[seg[0]["mode"]].extend(seg[1:])  # seg[0] straddles the switch

    def mean(mode: str, column: str) -> float:
        values = [float(r[column]) for r in kept[mode]]
        return statistics.fmean(values) if values else float("nan")

    print(
        f"default config, {args.cycles} cycles of {args.period:g} s per mode after "
        f"{args.warmup:g} s warm-up; {len(rows)} updates, {switches} switches seen in metrics.csv"
    )
    print(f"{'mode':<14}{'updates':>8}{'batch':>7}{'epochs':>7}{'steps/s':>10}{'cpu cores':>11}")
    for mode in ("quiet", "performance"):
        r = kept[mode]
        batch = r[0]["batch_size"] if r else "-"
        epochs = r[0]["n_epochs"] if r else "-"
        print(
            f"{mode:<14}{len(r):>8}{batch:>7}{epochs:>7}"
            f"{mean(mode, 'fps'):>10.1f}{mean(mode, 'cpu_cores'):>11.3f}"
        )

    ratio = mean("performance", "fps") / mean("quiet", "fps")
    q = knobs_for(Mode.QUIET, Config())
    share = q.cpu_share * q.torch_threads
    dev = (mean("quiet", "cpu_cores") - share) / share
    print()
    print(
        f"performance/quiet steps/s  {ratio:>6.2f}x   target >= 2.00x   "
        f"{'OK' if ratio >= 2 else 'MISSED'}"
    )
    print(
        f"quiet cpu vs share         {dev:>+6.1%}    target within +-10% of "
        f"{q.cpu_share:g} x {q.torch_threads} = {share:g} cores   "
        f"{'OK' if abs(dev) <= 0.10 else 'MISSED'}"
    )
    print(
        f"performance/quiet cpu      {mean('performance', 'cpu_cores') / mean('quiet', 'cpu_cores'):>6.2f}x"
    )


if __name__ == "__main__":
    main()
