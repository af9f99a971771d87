"""A file's time column(s), read chunk by chunk, with the day/month order settled at the end.

Where the layout leaves the order open (``02.01.2017``), every chunk keeps both readings and
notes the first row that only one order can read. After the last chunk one of them is
chosen for the whole file (or the file is refused), so a day-first stamp on line 220 makes
lines 2 to 219 day-first too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perfmode.env import dates, stampparse
from perfmode.env.csvformats import key
from perfmode.env.dates import DAY_FIRST, MONTH_FIRST, NAT, StampFormat
from perfmode.errors import UsageError

Problem = tuple[int, str]
"""(line, message): the first bad row of a chunk; the earliest one is reported."""


@dataclass(frozen=True)
class TimeReading:
    """How the stamps were read, for the summary."""

    time_format: str | None
    date_order: str | None
    date_order_reason: str | None
    time_zone: str


class TimeColumn:
    def __init__(
        self,
        path: Path,
        names: list[str],
        samples: list[list[str]],
        first_line: int,
        date_format: str | None,
    ) -> None:
        self.path, self.names, self.first_line = path, names, first_line
        self.configured = date_format
        first = [v.strip() for v in samples[0] if v.strip()]
        # Unix times: a plain number of 9 digits or more (8 digits are a date, 20240102).
        self.unix = bool(first) and first[0].replace(".", "", 1).isdigit() and len(first[0]) >= 9
        self.fmt = None if self.unix else dates.infer_format(first)
        self.tod: StampFormat | None = None
        if len(samples) == 2:
            self.tod = dates.infer_format(samples[1], time_only=True)
        self.stamps: dict[str | None, list[np.ndarray]] = {}
        self.evidence: dict[str, tuple[int, str]] = {}
        self.example: tuple[int, str] | None = None
        self.units: set[str] = set()

    def dtypes(self, cols: tuple[int, ...]) -> dict[int, str]:
        """pandas dtypes: stamps as fixed-width bytes (no Python string per row)."""
        text = cols[1:] if self.unix else cols
        return {c: f"S{stampparse.STAMP_BYTES}" for c in text}

    @property
    def ambiguous(self) -> bool:
        return self.fmt is not None and self.fmt.ambiguous

    def take(self, times: list[np.ndarray], lines: np.ndarray) -> Problem | None:
        """Read one chunk's stamps and keep them; the first bad row, if any."""
        raw = times[0]
        if self.unix:
            numbers = raw
            if raw.dtype.kind not in "iuf":  # a cell that is not a number made it text
                numbers = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(np.float64)
            ns, valid, units = stampparse.unix_times(numbers)
            self.units |= units
            readings: dict[str | None, np.ndarray] = {None: ns}
            bad = ~valid
        elif self.fmt is None:
            readings = {None: np.full(len(raw), NAT, dtype=np.int64)}
            bad = np.ones(len(raw), dtype=bool)
        else:
            parsed = stampparse.parse(raw, self.fmt)
            readings, bad = parsed.by_order, parsed.unreadable
        if self.ambiguous:
            readings, bad = self._order_evidence(readings, bad, raw, lines)
        else:
            bad = bad | (readings[None] == NAT)
        problems = []
        if bad.any():
            problems.append(self._problem(raw, lines, int(np.flatnonzero(bad)[0]), 0))
        if len(times) == 2:
            tod = (
                stampparse.parse(times[1], self.tod).by_order[None]
                if self.tod is not None
                else np.full(len(raw), NAT, dtype=np.int64)
            )
            wrong = np.flatnonzero(tod == NAT)
            if len(wrong):
                problems.append(self._problem(times[1], lines, int(wrong[0]), 1))
            readings = {
                k: np.where((v != NAT) & (tod != NAT), v + tod, NAT) for k, v in readings.items()
            }
        for order, ns in readings.items():
            self.stamps.setdefault(order, []).append(ns)
        return min(problems) if problems else None

    def finish(self) -> tuple[np.ndarray, TimeReading]:
        """Every chunk's stamps in the file's order (int64 ns), and how they were read."""
        order, reason = self._decide_order()
        ns = np.concatenate(self.stamps[order])
        self.stamps.clear()
        return ns, TimeReading(
            self._time_format(order), self._date_order(order), reason, self._zone()
        )

    def _order_evidence(
        self,
        readings: dict[str | None, np.ndarray],
        bad: np.ndarray,
        raw: np.ndarray,
        lines: np.ndarray,
    ) -> tuple[dict[str | None, np.ndarray], np.ndarray]:
        day, month = readings[DAY_FIRST] != NAT, readings[MONTH_FIRST] != NAT
        if self.example is None and len(raw):
            self.example = (int(lines[0]), stampparse.text_at(raw, 0).strip())
        for order, only in ((DAY_FIRST, day & ~month), (MONTH_FIRST, month & ~day)):
            if order not in self.evidence and only.any():
                i = int(np.flatnonzero(only)[0])
                self.evidence[order] = (int(lines[i]), stampparse.text_at(raw, i).strip())
        if self.configured in (DAY_FIRST, MONTH_FIRST):
            chosen = readings[self.configured]
            return {self.configured: chosen}, bad | (chosen == NAT)
        return readings, bad | (~day & ~month)

    def _problem(self, raw: np.ndarray, lines: np.ndarray, i: int, which: int) -> Problem:
        name = self.names[which]
        if raw.dtype.kind in "iuf":
            value: object = raw[i]
            empty = bool(np.isnan(value)) if raw.dtype.kind == "f" else False
        else:
            value = stampparse.text_at(raw, i)
            empty = not str(value).strip()
        if empty:
            shown = "empty"
        else:
            what = "time" if which else "date/time"
            if which == 0 and self.configured and self.ambiguous:
                what = f"{self.configured} date/time (date_format says {self.configured})"
            cell = repr(value) if isinstance(value, str) else str(value)
            shown = f"{cell} is not a {what}"
        return int(lines[i]), f"line {lines[i]}: column {name}: {shown}"

    def _decide_order(self) -> tuple[str | None, str | None]:
        if not self.ambiguous:
            return None, None
        if self.configured is not None:
            return self.configured, "date_format"
        day, month = self.evidence.get(DAY_FIRST), self.evidence.get(MONTH_FIRST)
        name = self.names[0]
        if day and month:
            raise UsageError(
                f"{self.path}: column {name}: line {day[0]} reads only day-first ({day[1]!r}) "
                f"but line {month[0]} only month-first ({month[1]!r}); fix the rows that "
                "do not match the rest"
            )
        if day:
            return DAY_FIRST, f"line {day[0]}: {day[1]!r}"
        if month:
            return MONTH_FIRST, f"line {month[0]}: {month[1]!r}"
        line, text = self.example or (self.first_line, "")
        raise UsageError(
            f"{self.path}: column {name}: every date reads both day-first and month-first "
            f"(line {line}: {text!r}); say which with --date-format day-first or month-first "
            "(env.date_format in a config)"
        )

    def _time_format(self, order: str | None) -> str | None:
        if self.unix:
            units = {"s": "s", "ms": "ms", "us": "µs", "ns": "ns"}
            seen = [units[u] for u in ("s", "ms", "us", "ns") if u in self.units]
            return f"Unix time ({', '.join(seen)})"
        if self.fmt is None:
            return None
        shown = self.fmt.shown(order)
        return f"{shown} + {self.tod.shown()}" if self.tod is not None else shown

    def _date_order(self, order: str | None) -> str | None:
        if self.fmt is None:
            return None
        if self.fmt.ambiguous:
            return order
        return "month name" if "mon" in self.fmt.spans else "year-first"

    def _zone(self) -> str:
        zoned = [f for f in (self.fmt, self.tod) if f is not None and f.has_zone]
        if self.unix:
            return "UTC (Unix time)"
        if any("zs" in f.spans for f in zoned):
            return "UTC (converted from the offsets in the file)"
        if zoned:
            return "UTC (the stamps say so)"
        names = " ".join(key(n) for n in self.names)
        if "gmt" in names or "utc" in names:
            return f"UTC (column {self.names[0]!r})"
        if "local" in names:
            return "the exporter's local time (no offset given; taken as written)"
        return "not given; taken as written"
