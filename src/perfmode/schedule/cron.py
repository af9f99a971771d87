"""Cron expressions for ``--rule "CRON=MODE"``: parsed here, so the timetable stays pure.

A rule is a set of days (:meth:`CronSpec.matches`) and wall times (:attr:`CronSpec.times`);
``timetable.day_boundaries`` turns them into instants, and the daemon wakes at those, so
this is the only cron engine. Why not APScheduler's ``CronTrigger.from_crontab``: in 3.x
it numbers weekdays 0 = Monday, while every crontab (and every cron tutorial) says
0 = Sunday, so ``0 18 * * 1-5`` would silently mean Tuesday to Saturday
(https://github.com/agronholm/apscheduler/issues/286); its jobs fire a nonexistent 02:30 an
hour late and an ambiguous one twice; and importing it costs ~0.1 s, too much for
``perfmode status``. We read weekdays the standard way (0 and 7 = Sunday, or names).

Day-of-month and day-of-week combine with AND, as in APScheduler (classic cron ORs them
when both are restricted): ``0 9 1-7 * mon`` is the first Monday of the month.
An optional sixth, leading field of seconds is accepted (the Quartz/Spring form).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import cached_property

from perfmode.base.modes import Mode
from perfmode.errors import UsageError
from perfmode.settings.store import parse_mode

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
# Standard cron numbering: sun = 0 (and 7), mon = 1 ... sat = 6.
CRON_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
MAX_TIMES_A_DAY = 24 * 60
RULE_HELP = "write 'MIN HOUR DAY MONTH WEEKDAY=MODE', e.g. '0 18 * * mon-fri=performance'"


class CronError(ValueError):
    pass


def _value(token: str, lo: int, hi: int, names: dict[str, int], *, end: bool) -> int:
    low = token.lower()
    if low in names:
        # "fri-sun" reads as Friday to Sunday: Sunday is 7 at the end of a range.
        return 7 if end and names is CRON_WEEKDAYS and low == "sun" else names[low]
    if not (token.isascii() and token.isdigit()):
        raise CronError(f"{token!r} is not a number" + (" or a name" if names else ""))
    n = int(token)
    if not lo <= n <= hi:
        raise CronError(f"{n} is outside {lo}-{hi}")
    return n


def parse_field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """One cron field (``*``, ``*/5``, ``1-5``, ``mon-fri``, ``0,30``) as the set it allows."""
    names = names or {}
    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"empty item in {text!r}")
        body, _, step_s = item.partition("/")
        step = 1
        if step_s:
            if not (step_s.isascii() and step_s.isdigit()) or int(step_s) == 0:
                raise CronError(f"step {step_s!r} in {item!r} must be a positive number")
            step = int(step_s)
        if body == "*":
            first, last = lo, hi
        elif "-" in body:
            a, _, b = body.partition("-")
            first = _value(a, lo, hi, names, end=False)
            last = _value(b, lo, hi, names, end=True)
            if first > last:
                raise CronError(f"range {body!r} runs backwards")
        else:
            first = _value(body, lo, hi, names, end=False)
            # "5/15" means every 15 from 5 (as in Vixie cron); a bare "5" is just 5.
            last = hi if step_s else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class CronSpec:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """Python numbering: Monday = 0 ... Sunday = 6."""

    def matches(self, d: date) -> bool:
        return d.month in self.months and d.day in self.days and d.weekday() in self.weekdays

    @cached_property
    def times(self) -> tuple[time, ...]:
        return tuple(
            time(h, m, s)
            for h in sorted(self.hours)
            for m in sorted(self.minutes)
            for s in sorted(self.seconds)
        )

    def fires_ever(self, start: date = date(2000, 1, 1), years: int = 28) -> bool:
        # 28 years hold every calendar layout of 2001-2099, so "31 2 *" or "30 2 *" are
        # caught while a rare "29 2 mon" still passes.
        d, end = start, start.replace(year=start.year + years)
        while d < end:
            if self.matches(d):
                return True
            d += timedelta(days=1)
        return False


def parse_cron(expr: str) -> CronSpec:
    fields = expr.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"a cron expression has 5 fields, this one has {len(fields)}")
    sec, minute, hour, dom, month, dow = fields
    cron_days = parse_field(dow, 0, 7, CRON_WEEKDAYS)
    return CronSpec(
        seconds=parse_field(sec, 0, 59),
        minutes=parse_field(minute, 0, 59),
        hours=parse_field(hour, 0, 23),
        days=parse_field(dom, 1, 31),
        months=parse_field(month, 1, 12, MONTHS),
        weekdays=frozenset((n - 1) % 7 for n in cron_days),
    )


@dataclass(frozen=True)
class Rule:
    """``CRON=MODE``: at every time the cron expression names, switch to ``mode``."""

    text: str
    cron: CronSpec
    mode: Mode


def parse_rule(text: str) -> Rule:
    text = " ".join(str(text).split())
    expr, eq, mode_s = text.rpartition("=")
    if not eq or not expr.strip():
        raise UsageError(f"bad rule {text!r}: no '=MODE' at the end; {RULE_HELP}")
    try:
        mode = parse_mode(mode_s)
    except UsageError as e:
        raise UsageError(f"bad rule {text!r}: {e}") from None
    try:
        cron = parse_cron(expr)
    except CronError as e:
        raise UsageError(f"bad rule {text!r}: {e}; {RULE_HELP}") from None
    if len(cron.times) > MAX_TIMES_A_DAY:
        # Every boundary is computed per day, for `perfmode status` too; keep that cheap.
        raise UsageError(f"bad rule {text!r}: it fires more often than once a minute")
    if not cron.fires_ever():
        raise UsageError(f"bad rule {text!r}: no date matches its day and month fields")
    return Rule(f"{expr.strip()}={mode.value}", cron, mode)
