"""A run's ``metrics.csv`` as chart columns, read incrementally as the trainer appends.

The file only grows while a trainer runs, so each read starts where the last one stopped
and takes complete lines only (a row being written is picked up next time). Two things
make the steps go backwards, and the chart shows the run as its weights know it:

- a resume redoes the rollout that a stop cut short, so rows past the checkpoint it resumed
  from are followed by rows with fewer steps: those later-superseded rows are dropped;
- ``--fresh`` starts over at 0 in the same file: everything before it is dropped.

A row that cannot be parsed is skipped; nothing a file can contain raises. A file of any
size costs bounded time and memory: a page opened on a long run reads the file's last
8 MiB, at most 8 MiB per poll, and a run's rows are thinned past 200,000.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import os
import stat
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The page gets at most about this many points per run when it connects; later rows are
# sent as they come. Rows where the mode changes are always kept, so the shading is exact.
MAX_POINTS = 4000
# Bounds on what a metrics.csv of any size costs the server: rows held per run, bytes read
# per poll, and how much of a file first met (a page opened on a long run) is read at all.
MAX_ROWS = 200_000
READ_BYTES = 8 << 20
TAIL_BYTES = READ_BYTES  # the tail is read in one go: the first event ends at the newest row
_NO_BLOCK = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
COLUMNS = ("fps", "cpu_cores", "ep_rew_mean")


@dataclass
class Series:
    steps: array = field(default_factory=lambda: array("d"))
    time: list[str] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)
    values: dict[str, array] = field(default_factory=lambda: {c: array("d") for c in COLUMNS})

    def __len__(self) -> int:
        return len(self.steps)

    def truncate(self, n: int) -> None:
        del self.steps[n:], self.time[n:], self.mode[n:]
        for col in self.values.values():
            del col[n:]

    def append(self, steps: float, time: str, mode: str, values: dict[str, float]) -> None:
        self.steps.append(steps)
        self.time.append(time)
        self.mode.append(mode)
        for c in COLUMNS:
            self.values[c].append(values[c])

    def thinned(self, max_points: int) -> Series:
        out = Series()
        for i in _thin(self.mode, 0, len(self), max_points):
            out.append(
                self.steps[i], self.time[i], self.mode[i], {c: self.values[c][i] for c in COLUMNS}
            )
        return out

    def columns(self, start: int = 0, max_points: int | None = None) -> dict[str, list[Any]]:
        """JSON-ready columns from row ``start``; NaN (no value) becomes null."""
        idx = list(range(start, len(self)))
        if max_points is not None and len(idx) > max_points:
            idx = _thin(self.mode, start, len(self), max_points)
        return {
            "steps": [self.steps[i] for i in idx],
            "time": [self.time[i] for i in idx],
            "mode": [self.mode[i] for i in idx],
            **{c: [_num(self.values[c][i]) for i in idx] for c in COLUMNS},
        }


class MetricsTail:
    """Follows one metrics.csv; ``poll()`` says what the page must be told."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.series = Series()
        self._offset = 0
        self._inode: int | None = None
        self._header: list[str] | None = None

    def poll(self) -> tuple[bool, int]:
        """Read what was appended: ``(reset, first_new_row)``.

        ``reset`` means rows the page already has changed (a rewind or a new file):
        it must take the whole series again. Otherwise rows from ``first_new_row`` are new.
        """
        try:
            st = os.stat(self.path)
        except OSError:
            if self._offset or len(self.series):
                self._restart()
                return True, 0
            return False, 0
        reset = False
        if st.st_ino != self._inode or st.st_size < self._offset:
            reset = bool(len(self.series))
            self._restart()
            self._inode = st.st_ino
        if st.st_size == self._offset or not stat.S_ISREG(st.st_mode):
            return reset, len(self.series)  # a FIFO would block the server: never opened
        try:
            chunk = self._read_new(st.st_size)
        except OSError:
            return reset, len(self.series)
        end = chunk.rfind(b"\n") + 1
        if not end and len(chunk) >= READ_BYTES:
            end = len(chunk)  # one line longer than a whole read: skipped, never waited on
        self._offset += end
        first = len(self.series)
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            row = self._parse(line)
            if row is None:
                continue
            steps = row[0]
            if len(self.series) and steps <= self.series.steps[-1]:
                # The steps went back: drop the rows this one supersedes.
                keep = bisect.bisect_left(self.series.steps, steps)
                if keep < first:
                    reset = True
                first = min(first, keep)
                self.series.truncate(keep)
            self.series.append(*row)
        if len(self.series) > MAX_ROWS:
            # Memory stays bounded however long the run: keep a thinned copy of the rows.
            self.series = self.series.thinned(MAX_ROWS // 2)
            reset = True
        return reset, (0 if reset else first)

    def _read_new(self, size: int) -> bytes:
        """At most READ_BYTES of what was appended; a file met for the first time is read
        from its last TAIL_BYTES (after its header line), not from its start."""
        fd = os.open(self.path, os.O_RDONLY | _NO_BLOCK)
        with os.fdopen(fd, "rb") as f:
            if self._offset == 0 and size > TAIL_BYTES:
                header = f.readline(64 * 1024)
                if self._parse(header.decode("utf-8", "replace").rstrip("\r\n")) is None:
                    f.seek(size - TAIL_BYTES)
                    f.readline(READ_BYTES)  # the rest of a cut row
                    self._offset = f.tell()
            f.seek(self._offset)
            return f.read(READ_BYTES)

    def _restart(self) -> None:
        self.series = Series()
        self._offset = 0
        self._inode = None
        self._header = None

    def _parse(self, line: str) -> tuple[float, str, str, dict[str, float]] | None:
        try:
            cells = next(csv.reader(io.StringIO(line)))
        except (csv.Error, StopIteration):
            return None
        if self._header is None:
            self._header = cells
            return None
        row = dict(zip(self._header, cells, strict=False))
        steps = _float(row.get("timesteps"))
        if math.isnan(steps):
            return None
        return (
            steps,
            row.get("time") or "",
            row.get("mode") or "",
            {c: _float(row.get(c)) for c in COLUMNS},
        )


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x


def _thin(mode: list[str], start: int, stop: int, max_points: int) -> list[int]:
    """Every k-th row, the last one, and both rows around every change of mode."""
    k = math.ceil((stop - start) / max_points)
    keep = set(range(start, stop, k))
    keep.add(stop - 1)
    changes = [i for i in range(start + 1, stop) if mode[i] != mode[i - 1]]
    if len(changes) <= max_points:  # a mode flipping every row must not unbound the series
        for i in changes:
            keep.update((i - 1, i))
    return sorted(keep)
