"""What a running trainer tells the world: status.json (live) and metrics.csv (per update)."""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil

from perfmode.fsutil import atomic_write_bytes
from perfmode.gpu import METRICS_COLUMNS as GPU_COLUMNS
from perfmode.runstatus import write_status
from perfmode.settings import format_time, utc_now

log = logging.getLogger("perfmode.train")

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
    *GPU_COLUMNS,
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
    """One row per PPO update; appends across resumes (a header only for a new file).

    A file written by another perfmode version keeps its rows and its columns: see
    :func:`metrics_columns`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = metrics_columns(path, METRICS_FIELDS)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: row.get(k, "") for k in self.fields})


def metrics_columns(path: Path, fields: list[str]) -> list[str]:
    """The columns to append to ``path`` with, after making its header hold all ``fields``.

    A new or empty file gets ``fields`` as its header. A file from an older perfmode (fewer
    columns) is rewritten once, atomically, with the missing columns added at the end and
    left empty in its old rows, so a run's rows stay in one file whatever version wrote them;
    columns it has that ``fields`` lacks (a newer version's) are kept. A file whose first
    line is no metrics header at all is moved aside to ``metrics-<time>.csv``, with a warning.
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        rows = []
    header = rows[0] if rows else []
    if header == fields:
        return fields
    if rows and "timesteps" not in header:
        aside = path.with_name(f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        os.replace(path, aside)
        log.warning("⚠️  %s had no metrics header; moved it to %s", path, aside.name)
        rows, header = [], []
    missing = [c for c in fields if c not in header]
    if rows and not missing:
        return header
    columns = header + missing
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns)
    pad = [""] * (len(columns) - len(header))
    writer.writerows(row + pad if len(row) == len(header) else row for row in rows[1:])
    atomic_write_bytes(path, out.getvalue().encode())
    return columns
