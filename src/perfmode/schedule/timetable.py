"""The timetable: which mode the schedule wants at any instant. Pure: no I/O, no clock.

A timetable is a list of *boundaries*, instants at which it switches to a mode. They are
computed by walking local calendar days in the timetable's zone and turning each wall
time into a UTC instant, so every comparison happens in UTC and each wall time happens
once a day even on DST days:

- a wall time that does not exist (spring forward) moves to the first valid minute after
  it: 02:30 on the morning clocks jump 02:00 → 03:00 happens at 03:00;
- a wall time that happens twice (fall back) happens the first time only (``fold=0``).

Weekends (``--weekends``): ``schedule`` runs the weekday timetable on Saturday and Sunday
too. ``performance`` or ``quiet`` holds that mode for the whole weekend: at Saturday 00:00
the weekend mode starts, Saturday's and Sunday's night/day times do not fire, and at Monday
00:00 the weekday timetable resumes in the state it has at midnight (the mode of whichever
of night and day comes later in the day). A midnight boundary that would not change the
mode is left out, so ``--weekends performance`` after a Friday night simply runs on until
Monday's day time.

Rules (``--rule``) add boundaries of their own; each time a rule names is a boundary even
if its mode is already in force. When several boundaries fall on one instant, the rule
listed last wins (night/day count as listed before every rule).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from perfmode.base.modes import Mode
from perfmode.errors import UsageError
from perfmode.schedule.cron import Rule, parse_rule

WEEKENDS = ("schedule", "performance", "quiet")
SATURDAY, MONDAY = 5, 0
# How far back to look for the last boundary: eight years cover a yearly (even a
# 29 February) rule; an everyday timetable finds its boundary within two days.
MAX_DAYS = 8 * 366 + 2


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def parse_hhmm(value: str, what: str = "time") -> time:
    """``18:00`` or ``7:30`` as a time of day; 24-hour clock, nothing else."""
    text = str(value).strip()
    hh, sep, mm = text.partition(":")
    if (
        sep
        and text.isascii()  # str.isdigit() also accepts "١٨"
        and hh.isdigit()
        and mm.isdigit()
        and len(hh) in (1, 2)
        and len(mm) == 2
        and int(hh) < 24
        and int(mm) < 60
    ):
        return time(int(hh), int(mm))
    raise UsageError(f"bad time {value!r} for {what}; use 24-hour HH:MM, e.g. 18:00")


def hhmm(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


@dataclass(frozen=True)
class Boundary:
    """An instant at which the timetable switches to ``mode``."""

    at: datetime
    """UTC."""
    mode: Mode
    local: datetime
    """``at`` in the timetable's zone."""
    source: str
    """``night``, ``day``, ``weekend``, ``weekday`` or ``rule N`` (1-based)."""
    rank: int = 0
    """Breaks ties between boundaries at one instant: the highest rank wins."""

    @property
    def key(self) -> tuple[datetime, int]:
        return (self.at, self.rank)


@dataclass(frozen=True)
class Timetable:
    tz: str
    night: time | None = None
    day: time | None = None
    weekends: str = "schedule"
    rules: tuple[Rule, ...] = ()

    @classmethod
    def create(
        cls,
        *,
        tz: str,
        night: str | None = None,
        day: str | None = None,
        weekends: str | None = None,
        rules: Sequence[str] = (),
        prefix: str = "--",
    ) -> Timetable:
        """Validate user input; every problem is one ``UsageError`` line naming the option."""
        if (night is None) != (day is None):
            given, missing = ("night", "day") if day is None else ("day", "night")
            raise UsageError(f"{prefix}{given} needs {prefix}{missing} as well")
        n = parse_hhmm(night, f"{prefix}night") if night is not None else None
        d = parse_hhmm(day, f"{prefix}day") if day is not None else None
        if n is not None and n == d:
            raise UsageError(f"{prefix}night and {prefix}day are both {hhmm(n)}; they must differ")
        if weekends is not None:
            weekends = str(weekends).strip().lower()
            if weekends not in WEEKENDS:
                raise UsageError(
                    f"bad {prefix}weekends {weekends!r}; use one of {', '.join(WEEKENDS)}"
                )
            if n is None:
                raise UsageError(
                    f"{prefix}weekends applies to {prefix}night/{prefix}day; "
                    "a rule names its own weekdays"
                )
        parsed = tuple(parse_rule(r) for r in rules)
        if n is None and not parsed:
            raise UsageError(
                f"an empty schedule: give {prefix}night and {prefix}day "
                f"(e.g. {prefix}night 18:00 {prefix}day 08:00) or a rule"
            )
        load_zone(tz)
        return cls(str(tz), n, d, weekends or "schedule", parsed)

    @classmethod
    def from_dict(cls, obj: Any) -> Timetable:
        """The ``schedule`` value of settings.json; a ``UsageError`` says what is wrong."""
        if not isinstance(obj, Mapping):
            raise UsageError(f"'schedule' is a JSON {type(obj).__name__}, not an object")
        if not obj.get("tz"):
            raise UsageError("'schedule' has no 'tz' (an IANA zone such as \"Europe/Berlin\")")
        rules = obj.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise UsageError("'schedule.rules' must be a list of \"CRON=MODE\" strings")
        return cls.create(
            tz=obj["tz"],
            night=obj.get("night"),
            day=obj.get("day"),
            weekends=obj.get("weekends"),
            rules=rules,
            prefix="schedule.",
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.night is not None and self.day is not None:
            out.update(night=hhmm(self.night), day=hhmm(self.day), weekends=self.weekends)
        out["tz"] = self.tz
        if self.rules:
            out["rules"] = [r.text for r in self.rules]
        return out

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)  # cached by zoneinfo itself

    def describe(self) -> str:
        parts = []
        if self.night is not None and self.day is not None:
            parts.append(f"night {hhmm(self.night)} → performance, day {hhmm(self.day)} → quiet")
            parts.append(f"weekends {self.weekends}")
        parts += [f"rule {r.text}" for r in self.rules]
        return f"{'; '.join(parts)} ({self.tz})"


def wall_to_utc(day: date, wall: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant a wall time on ``day`` happens: first occurrence, or just after a gap."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap, fold=0 and fold=1 map to two instants on either side of the transition;
    # the transition itself is the first valid moment after the wall time.
    other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = sorted((first, other))
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    hi = hi.replace(microsecond=0)
    local = hi.astimezone(zone)
    if local.second:  # old zones had offsets in seconds; round up to a whole minute
        hi += timedelta(seconds=60 - local.second)
    return hi


def _midnight_mode(tt: Timetable) -> Mode:
    assert tt.night is not None and tt.day is not None
    return Mode.PERFORMANCE if tt.night > tt.day else Mode.QUIET


def day_boundaries(
    tt: Timetable, day: date, zone: zoneinfo.ZoneInfo | None = None
) -> list[Boundary]:
    """The boundaries whose wall time falls on local calendar ``day``."""
    zone = zone or tt.zone
    walls: list[tuple[time, Mode, str, int]] = []
    if tt.night is not None and tt.day is not None:
        wd = day.weekday()
        weekend_mode = None if tt.weekends == "schedule" else Mode(tt.weekends)
        if weekend_mode is None or wd < SATURDAY:
            walls += [(tt.night, Mode.PERFORMANCE, "night", 0), (tt.day, Mode.QUIET, "day", 0)]
        if weekend_mode is not None:
            at_midnight = _midnight_mode(tt)
            if wd == SATURDAY and weekend_mode != at_midnight:
                walls.append((time(0), weekend_mode, "weekend", 0))
            elif wd == MONDAY and weekend_mode != at_midnight:
                walls.append((time(0), at_midnight, "weekday", 0))
    for i, rule in enumerate(tt.rules, start=1):
        if rule.cron.matches(day):
            walls += [(t, rule.mode, f"rule {i}", i) for t in rule.cron.times]
    out = []
    for wall, mode, source, rank in walls:
        at = wall_to_utc(day, wall, zone)
        out.append(Boundary(at, mode, at.astimezone(zone), source, rank))
    return out


def _local_date(now: datetime, zone: zoneinfo.ZoneInfo) -> date:
    if now.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC)")
    return now.astimezone(zone).date()


def last_boundary(tt: Timetable, now: datetime) -> Boundary | None:
    """The boundary in force at ``now``: the latest one at or before it."""
    zone = tt.zone
    today = _local_date(now, zone)
    for back in range(MAX_DAYS):
        found = [b for b in day_boundaries(tt, today - timedelta(days=back), zone) if b.at <= now]
        if found:
            # A DST gap pushes times forward, so the previous day can hold a later one.
            prev = today - timedelta(days=back + 1)
            found += [b for b in day_boundaries(tt, prev, zone) if b.at <= now]
            return max(found, key=lambda b: b.key)
    return None


def scheduled_mode(tt: Timetable, now: datetime) -> Mode | None:
    b = last_boundary(tt, now)
    return b.mode if b else None


def _dedupe(found: Iterable[Boundary]) -> list[Boundary]:
    best: dict[datetime, Boundary] = {}
    for b in found:
        if b.at not in best or b.rank > best[b.at].rank:
            best[b.at] = b
    return [best[k] for k in sorted(best)]


def boundaries_between(tt: Timetable, start: datetime, end: datetime) -> list[Boundary]:
    """Boundaries with ``start < at <= end``, in order, one per instant."""
    zone = tt.zone
    d, last = _local_date(start, zone) - timedelta(days=1), _local_date(end, zone)
    found = []
    while d <= last:
        found += [b for b in day_boundaries(tt, d, zone) if start < b.at <= end]
        d += timedelta(days=1)
    return _dedupe(found)


def next_switches(tt: Timetable, now: datetime, n: int = 3) -> list[Boundary]:
    """The next ``n`` boundaries after ``now``."""
    zone = tt.zone
    d = _local_date(now, zone) - timedelta(days=1)
    found: list[Boundary] = []
    spare = 1  # one day past the n-th: a DST gap can push a time into the next day
    for _ in range(MAX_DAYS):
        found += [b for b in day_boundaries(tt, d, zone) if b.at > now]
        d += timedelta(days=1)
        if len({b.at for b in found}) >= n:
            if spare == 0:
                break
            spare -= 1
    return _dedupe(found)[:n]
