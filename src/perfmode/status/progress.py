"""What a running trainer tells the world: status.json (live) and metrics.csv (per update)."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from perfmode.base.clock import format_time, utc_now
from perfmode.base.cputime import own_cpu_seconds
from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.platform import replace_file
from perfmode.base.smallfile import open_append
from perfmode.settings.holds import process_start
from perfmode.status.file import write_status
from perfmode.status.model import GPU_METRICS_COLUMNS as GPU_COLUMNS
from perfmode.status.model import TrainerStatus

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
    # Why the row's mode (``cli``, ``schedule``, ``hold 3fa2c1: zoom``, ``auto: ...``); last,
    # where an older file gains it.
    "mode_reason",
]


class StatusFile:
    """status.json, written atomically, throttled, with a heartbeat: the one writer of
    :class:`~perfmode.status.model.TrainerStatus` (the trainer sets its fields, then writes)."""

    def __init__(self, path: Path, status: TrainerStatus) -> None:
        self.path = path
        self.status = status
        status.run.pid = os.getpid()
        # The start time tells this process from a later one given the same pid.
        status.run.pid_started = process_start(os.getpid())
        self._written: dict[str, Any] = {}
        self._last_write = 0.0
        self._failure: str | None = None

    def maybe_write(self, force: bool = False) -> None:
        now = time.monotonic()
        since = now - self._last_write
        # Comparing costs a dict: only once a write is allowed at all.
        changed = since >= MIN_WRITE_INTERVAL_S and self._fields() != self._written
        if force or changed or since >= HEARTBEAT_S:
            self.write(now)

    def _fields(self) -> dict[str, Any]:
        fields = self.status.to_json()
        del fields["heartbeat"]  # the write's own time, not a change
        return fields

    def write(self, now: float | None = None) -> None:
        self._written = self._fields()
        self._last_write = time.monotonic() if now is None else now
        self.status.run.heartbeat = format_time(utc_now())
        try:
            write_status(self.path, self.status.to_json())
        except OSError as e:
            # status.json is a report, not the work: a full disk or a read-only folder must
            # not stop training. Say so once; the next write tries again.
            if self._failure is None:
                log.warning(
                    "⚠️  cannot write %s (%s); training goes on, but `perfmode status` will "
                    "not see it until the write succeeds",
                    self.path,
                    e.strerror or e,
                )
            self._failure = str(e)
            return
        if self._failure is not None:
            log.info("status.json is written again: %s", self.path)
            self._failure = None


class CpuMeter:
    """CPU cores this process (and its env subprocesses) used since the last reading."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self._last = (time.monotonic(), own_cpu_seconds(self.proc))

    def read(self) -> float:
        now, cpu = time.monotonic(), own_cpu_seconds(self.proc)
        wall = now - self._last[0]
        cores = (cpu - self._last[1]) / wall if wall > 0 else 0.0
        self._last = (now, cpu)
        return cores


@dataclass(frozen=True)
class DroppedRows:
    rows: int
    path: Path


class MetricsCsv:
    """One row per PPO update; appends across resumes (a header only for a new file).

    A file written by another perfmode version keeps its rows and its columns: see
    :func:`metrics_columns`. A full or read-only disk costs rows, not the run: a failed
    write is reported once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(METRICS_FIELDS)
        # Something that is not a regular file (a FIFO, a device) must neither block the
        # trainer nor be read: no metrics for this run, said once.
        self.usable = _regular_or_missing(path)
        if not self.usable:
            self._failed(OSError(f"{path} is not a regular file; move it away"))
            return
        try:
            self.fields = metrics_columns(path, METRICS_FIELDS)
        except OSError as e:
            self._failed(e)

    def append(self, row: dict[str, Any]) -> None:
        if not self.usable:
            return
        line = io.StringIO()
        csv.DictWriter(line, self.fields).writerow({k: row.get(k, "") for k in self.fields})
        try:
            fd = open_append(self.path)
            with os.fdopen(fd, "a", newline="") as f:
                f.write(line.getvalue())
        except OSError as e:  # RefusedFile included: not a regular file any more
            self._failed(e)
        else:
            self._failing = False

    def _failed(self, e: OSError) -> None:
        if not self._failing:
            log.warning(
                "⚠️  cannot write %s (%s); training goes on, its rows are lost until it can",
                self.path,
                e.strerror or e,
            )
        self._failing = True

    def continue_from(self, timesteps: int) -> DroppedRows | None:
        """Keep the rows up to ``timesteps``, where a run resumes; move the rest (rows of
        updates whose weights were lost, or a line a kill cut short) to the run's archive."""
        if not self.usable:
            return None
        try:
            return self._continue_from(timesteps)
        except OSError as e:
            log.warning(
                "⚠️  cannot tidy %s (%s); its rows past %s steps stay",
                self.path,
                e.strerror or e,
                f"{timesteps:,}",
            )
            return None

    def _continue_from(self, timesteps: int) -> DroppedRows | None:
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines(True)
        except FileNotFoundError:
            return None
        if len(lines) <= 1:
            return None
        header = next(csv.reader([lines[0]]))
        if "timesteps" not in header:
            return None
        column = header.index("timesteps")
        keep, drop = [lines[0]], []
        for line in lines[1:]:
            done = line.endswith("\n") and _row_steps(line, column) <= timesteps
            (keep if done else drop).append(line)
        if not drop:
            return None
        archive = self.path.parent / "archive"
        stamp = utc_now().astimezone().strftime("%Y%m%d-%H%M%S")
        target = archive / f"{self.path.stem}-dropped-{stamp}.csv"
        archive.mkdir(exist_ok=True)
        with open(target, "a", encoding="utf-8", newline="") as f:
            f.write(lines[0] + "".join(d if d.endswith("\n") else d + "\n" for d in drop))
        atomic_write_bytes(self.path, "".join(keep).encode("utf-8"))
        return DroppedRows(len(drop), target)


def _regular_or_missing(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _row_steps(line: str, column: int) -> float:
    """A row's timesteps; infinity for a row that has none (so it is never kept by mistake)."""
    try:
        return int(next(csv.reader([line]))[column])
    except (ValueError, IndexError, StopIteration):
        return math.inf


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
        replace_file(path, aside)
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
