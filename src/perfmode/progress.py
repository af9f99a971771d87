"""What a running trainer tells the world: status.json (live) and metrics.csv (per update)."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import psutil

from perfmode.runstatus import write_status
from perfmode.settings import format_time, utc_now

# status.json is rewritten when something changed, at most this often...
MIN_WRITE_INTERVAL_S = 1.0
# ...and at least this often, as a heartbeat, even in the middle of a long update.
HEARTBEAT_S = 5.0

METRICS_FIELDS = [
    "time",
    "timesteps",
    "mode",
    "batch_size",
    "n_epochs",
    "fps",
    "cpu_cores",
    "ep_rew_mean",
]


class StatusFile:
    """status.json, written atomically, throttled, with a heartbeat."""

    def __init__(self, path: Path, fields: dict[str, Any]) -> None:
        self.path = path
        self.fields: dict[str, Any] = {"pid": os.getpid(), **fields}
        self._written: dict[str, Any] = {}
        self._last_write = 0.0

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)

    def maybe_write(self, force: bool = False) -> None:
        now = time.monotonic()
        since = now - self._last_write
        changed = self.fields != self._written
        if force or (changed and since >= MIN_WRITE_INTERVAL_S) or since >= HEARTBEAT_S:
            self.write(now)

    def write(self, now: float | None = None) -> None:
        self._written = dict(self.fields)
        self._last_write = time.monotonic() if now is None else now
        write_status(self.path, {**self.fields, "heartbeat": format_time(utc_now())})


class CpuMeter:
    """CPU cores this process (and its env subprocesses) used since the last reading."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self._last = (time.monotonic(), self._cpu_seconds())

    def _cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        total = t.user + t.system
        for child in self.proc.children(recursive=True):
            try:
                c = child.cpu_times()
            except psutil.Error:
                continue
            total += c.user + c.system
        return total

    def read(self) -> float:
        now, cpu = time.monotonic(), self._cpu_seconds()
        wall = now - self._last[0]
        cores = (cpu - self._last[1]) / wall if wall > 0 else 0.0
        self._last = (now, cpu)
        return cores


class MetricsCsv:
    """One row per PPO update; appends across resumes (a header only for a new file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(METRICS_FIELDS)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRICS_FIELDS).writerow({k: row.get(k, "") for k in METRICS_FIELDS})
