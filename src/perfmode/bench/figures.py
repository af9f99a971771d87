"""The figures of a bench: one table row per mode, ratios, the machine, the timeline."""

from __future__ import annotations

import csv
import platform
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from perfmode.base.modes import Mode
from perfmode.base.platform import cpu_model
from perfmode.config.schema import available_cores

MIB = 1024 * 1024


@dataclass
class Tally:
    """One row of the table, summed over its measuring windows."""

    steps: int = 0
    step_seconds: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_rss: int = 0
    windows: int = 0
    foreign: list[float] = field(default_factory=list)
    gpu_util: list[int] = field(default_factory=list)
    gpu_mem_peak: int | None = None

    def add_gpu(self, util_pct: int | None, mem_used_mib: int | None) -> None:
        if util_pct is not None:
            self.gpu_util.append(util_pct)
        if mem_used_mib is not None:
            self.gpu_mem_peak = max(self.gpu_mem_peak or 0, mem_used_mib)

    def add(self, steps: int, step_seconds: float, cpu_seconds: float, wall: float) -> None:
        self.steps += steps
        self.step_seconds += step_seconds
        self.cpu_seconds += cpu_seconds
        self.wall_seconds += wall
        self.windows += 1

    def row(self) -> dict[str, Any]:
        return {
            "steps_per_s": ratio(self.steps, self.step_seconds, 1),
            "cpu_cores": ratio(self.cpu_seconds, self.wall_seconds, 3),
            "peak_memory_mib": round(self.peak_rss / MIB, 1) if self.peak_rss else None,
            # NVML, sampled while the run trains on CUDA; null on the CPU or without NVML.
            "gpu_util_pct": round(statistics.fmean(self.gpu_util), 1) if self.gpu_util else None,
            "gpu_mem_used_mib": self.gpu_mem_peak,
            "timesteps": self.steps,
            "measured_seconds": round(self.wall_seconds, 1),
            "windows": self.windows,
            "foreign_cpu_cores": round(statistics.fmean(self.foreign), 3) if self.foreign else None,
        }


def ratio(a: float, b: float, digits: int) -> float | None:
    return round(a / b, digits) if b > 0 else None


def ratios(a: dict[str, Any], b: dict[str, Any] | None) -> dict[str, float | None] | None:
    if b is None:
        return None
    return {
        key: round(a[key] / b[key], 3) if a[key] and b[key] else None
        for key in ("steps_per_s", "cpu_cores", "peak_memory_mib")
    }


def bench_notes(
    rows: dict[str, Any], segment_seconds: float, threads: dict[str, Any] | None
) -> list[str]:
    """What the reader of a bench's table should know: a mode that showed no progress, a
    thread trial that was not over."""
    notes = [
        f"no progress of {mode} mode was seen in its {segment_seconds:.1f}-s "
        "segments (this config's rollouts or updates take longer); give it more --minutes"
        for mode in (Mode.QUIET.value, Mode.PERFORMANCE.value)
        if not rows[mode]["steps_per_s"]
    ]
    if (threads or {}).get("choice") == "trying":
        notes.append(
            "performance mode was still trying thread counts during the bench; its "
            "figures include the trial (give it more --minutes)"
        )
    return notes


def metrics_timeline(path: Path, t0: float) -> list[tuple[float, float, str]]:
    """(seconds since ``t0``, steps/s, mode) per row of the metrics.csv at ``path``, placed
    at the middle of its cycle."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    # A row's time has whole seconds only, but its cycle's length is exact (steps / fps)
    # and cycles are back to back: place them by their lengths, anchored to the clock.
    cycles: list[tuple[float, float, float, str]] = []  # (clock, length, fps, mode)
    last = 0
    for row in rows:
        try:
            clock = datetime.fromisoformat(row["time"]).timestamp()
            fps, steps = float(row["fps"]), int(row["timesteps"])
        except (KeyError, TypeError, ValueError):
            continue
        if fps > 0 and steps > last:
            cycles.append((clock, (steps - last) / fps, fps, row.get("mode") or ""))
        last = steps
    ends, elapsed = [], 0.0
    for i, (_, length, _, _) in enumerate(cycles):
        elapsed += length if i else 0.0
        ends.append(elapsed)
    if not cycles:
        return []
    # The first cycle ended in [clock_k - end_k, clock_k + 1 - end_k] for every k.
    low = max(c[0] - e for c, e in zip(cycles, ends, strict=True))
    high = min(c[0] + 1 - e for c, e in zip(cycles, ends, strict=True))
    first_end = (low + max(low, high)) / 2 - t0
    return [
        (round(first_end + e - length / 2, 3), fps, mode)
        for (_, length, fps, mode), e in zip(cycles, ends, strict=True)
    ]


def machine_info(device: str, gpu: str | None) -> dict[str, Any]:
    return {
        "cores": available_cores(),
        "cpu": cpu_model(),
        "torch": _version("torch"),
        "stable_baselines3": _version("stable-baselines3"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device,
        "gpu": gpu,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
