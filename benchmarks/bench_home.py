"""Several runs in one home: the mode is the home's budget (issue 22's targets, side by side).

On the default config, each figure over a ``--window`` of seconds after a warm-up (and, in
quiet, after the runs have paid back their start-up: the steady state):

- quiet: one run alone, and three runs together (target: together within quiet's share for
  the home, 0.5 cores by default, ±10 %; one alone unchanged);
- performance: steps/s of one run alone, two together (target ≥ 1.8× one on 2 cores) and
  four together (target: no less than two, the runs beyond the free cores waiting, none
  thrashing: no run goes from training to waiting or back while the load stays the same);
- switch latency from `perfmode set` to each run's "Performance mode" line, with four runs
  in the home (target: p95 ≤ 0.5 s for every run).

Say what else ran on the machine while measuring: the figures are the machine's, not the
trainer's alone.

    python benchmarks/bench_home.py [--window 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trainer import Trainer, percentile, set_mode


def status(home: Path, run: str) -> dict[str, Any]:
    try:
        return json.loads((home / "runs" / run / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def cpu_seconds(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def start(home: Path, runs: list[str]) -> list[Trainer]:
    trainers = [Trainer(home, "--timesteps", "1000000000", "--run", r) for r in runs]
    for r in runs:
        deadline = time.monotonic() + 180
        while not status(home, r).get("budget") and time.monotonic() < deadline:
            time.sleep(0.2)
    return trainers


def stop(trainers: list[Trainer]) -> None:
    for t in trainers:
        if t.proc.poll() is None:
            t.proc.terminate()
    for t in trainers:
        t.proc.wait(timeout=180)


def wait_paid_back(home: Path, runs: list[str], limit: float = 180.0) -> None:
    """Until no run rests to pay back its start-up (quiet's): not the steady state."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and any(status(home, r).get("payback_s") for r in runs):
        time.sleep(0.2)


def measure(home: Path, runs: list[str], trainers: list[Trainer], warm: float, window: float):
    """(cores used together, steps/s together, runs waiting at the end, state flips), over
    ``window`` seconds from ``warm`` seconds on, or from the end of the runs' start-up
    pay-back when that is later."""
    time.sleep(warm)
    wait_paid_back(home, runs)
    pids = [t.proc.pid for t in trainers]
    cpu0 = sum(cpu_seconds(p) for p in pids)
    steps0 = sum(status(home, r).get("timesteps") or 0 for r in runs)
    t0 = time.monotonic()
    states = {r: status(home, r).get("state") for r in runs}
    flips = 0
    while time.monotonic() - t0 < window:
        time.sleep(0.5)
        for r in runs:
            s = status(home, r).get("state")
            if s != states[r] and {s, states[r]} == {"training", "waiting"}:
                flips += 1
            states[r] = s
    wall = time.monotonic() - t0
    cores = (sum(cpu_seconds(p) for p in pids) - cpu0) / wall
    fps = (sum(status(home, r).get("timesteps") or 0 for r in runs) - steps0) / wall
    waiting = sum(1 for r in runs if states[r] == "waiting")
    return cores, fps, waiting, flips


def switches(
    home: Path, runs: list[str], trainers: list[Trainer], n: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per run: `perfmode set` started → log line, and settings.json replaced → log line."""
    from_set: dict[str, list[float]] = {r: [] for r in runs}
    from_file: dict[str, list[float]] = {r: [] for r in runs}
    wall_minus_mono = time.time() - time.monotonic()
    mode = "performance"
    for _ in range(n):
        mode = "quiet" if mode == "performance" else "performance"
        marks = [len(t.lines) for t in trainers]
        t0 = time.monotonic()
        set_mode(home, mode)
        written = (home / "settings.json").stat().st_mtime - wall_minus_mono
        for r, t, after in zip(runs, trainers, marks, strict=True):
            try:
                _, at = t.wait_line(f"Performance mode: {mode}", after=after, timeout=10)
                from_set[r].append(at - t0)
                from_file[r].append(at - written)
            except TimeoutError:
                from_set[r].append(float("inf"))
                from_file[r].append(float("inf"))
        time.sleep(1.0)
    return from_set, from_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warm", type=float, default=10.0)
    parser.add_argument("--switches", type=int, default=10)
    a = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cores} cores; load average {load:.1f} before starting (others' programs included)")
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:

        def case(name: str, mode: str, n: int):
            home = Path(tmp) / name
            set_mode(home, mode)
            runs = [f"{name}{i}" for i in range(n)]
            trainers = start(home, runs)
            try:
                return home, runs, trainers, measure(home, runs, trainers, a.warm, a.window)
            finally:
                if name != "p4_":
                    stop(trainers)

        _, _, _, (q1, _, _, _) = case("q1_", "quiet", 1)
        _, _, _, (q3, _, _, _) = case("q3_", "quiet", 3)
        rows.append(("quiet, 1 run: cores", f"{q1:.2f}", "0.50 ± 10 %"))
        rows.append(("quiet, 3 runs: cores together", f"{q3:.2f}", "0.50 ± 10 %"))
        _, _, _, (_, f1, _, _) = case("p1_", "performance", 1)
        _, _, _, (_, f2, _, _) = case("p2_", "performance", 2)
        home4, runs4, trainers4, (c4, f4, w4, flips4) = case("p4_", "performance", 4)
        try:
            rows.append(("performance, 1 run: steps/s", f"{f1:,.0f}", ""))
            rows.append(
                ("performance, 2 runs: steps/s", f"{f2:,.0f} ({f2 / f1:.2f}×)", "≥ 1.8× one")
            )
            rows.append(
                (
                    "performance, 4 runs: steps/s",
                    f"{f4:,.0f} ({f4 / f2:.2f}× two)",
                    "≥ 1.0× two",
                )
            )
            rows.append(("performance, 4 runs: waiting", f"{w4}", f"{max(0, 4 - cores)}"))
            rows.append(("performance, 4 runs: flips", f"{flips4}", "0"))
            rows.append(("performance, 4 runs: cores", f"{c4:.2f}", f"≤ {cores}"))
            from_set, from_file = switches(home4, runs4, trainers4, a.switches)
        finally:
            stop(trainers4)
        for r in runs4:
            p_set, p_file = percentile(from_set[r], 0.95), percentile(from_file[r], 0.95)
            rows.append((f"switch p95 {r}: set / file", f"{p_set:.3f} / {p_file:.3f} s", "≤ 0.5 s"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} at the end")
    print(f"{'figure':<36}{'measured':>22}   target")
    for name, got, target in rows:
        print(f"{name:<36}{got:>22}   {target}")


if __name__ == "__main__":
    main()
