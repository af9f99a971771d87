"""Holds: a mode that a program keeps while it runs, or for a while (``perfmode hold``).

A hold lives in settings.json under ``holds``, so it is written like everything there:
read-modify-write under the store's lock, atomically, keeping keys it does not know
(:meth:`SettingsStore.update`). Each hold is ``{"id", "mode", "reason", "created_at"}`` and
either a holder (``pid`` and ``pid_started``, the process's start time, so a reused pid does
not keep a dead holder's hold alive) or an end time (``until``).

A hold whose holder is gone (however it died, kill -9 included) or whose time has passed is
ignored at once by every reader and removed by the next write through this module. An entry
that is not a well-formed hold (a hand edit gone wrong) is ignored and kept as it is.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psutil

from perfmode.base.clock import format_time, parse_time, utc_now
from perfmode.base.modes import Mode, hold_modes
from perfmode.errors import UsageError
from perfmode.settings.store import Settings, SettingsStore, apply_mode

HOLDS_KEY = "holds"
# Process start times are floats from /proc; two reads of the same process agree closely.
START_TOLERANCE_S = 1.0
REASON_LIMIT = 80


@dataclass(frozen=True)
class Hold:
    id: str
    mode: Mode
    reason: str
    created_at: datetime | None = None
    pid: int | None = None
    pid_started: float | None = None
    until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "mode": self.mode.value, "reason": self.reason}
        if self.created_at:
            out["created_at"] = format_time(self.created_at)
        if self.pid is not None:
            out["pid"] = self.pid
            out["pid_started"] = self.pid_started
        if self.until is not None:
            out["until"] = format_time(self.until)
        return out

    def describe(self) -> str:
        return f"hold {self.id}: {self.reason}" if self.reason else f"hold {self.id}"


def parse_hold(entry: Any) -> Hold | None:
    """A hold from one entry of ``holds``, or None when it is not a well-formed one."""
    if not isinstance(entry, dict):
        return None
    hid, mode_s, reason = entry.get("id"), entry.get("mode"), entry.get("reason", "")
    if not isinstance(hid, str) or not hid or len(hid) > 32 or not isinstance(mode_s, str):
        return None
    try:
        mode = Mode(mode_s.strip().lower())
    except ValueError:
        return None
    if mode.spec.hold_rank is None:
        return None
    pid, started = entry.get("pid"), entry.get("pid_started")
    until = parse_time(entry.get("until"))
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        pid = None
    if isinstance(started, bool) or not isinstance(started, int | float):
        started = None
    if pid is None and until is None:
        return None  # nothing would ever end it
    return Hold(
        id=hid,
        mode=mode,
        reason=reason[:REASON_LIMIT] if isinstance(reason, str) else "",
        created_at=parse_time(entry.get("created_at")),
        pid=pid,
        pid_started=float(started) if started is not None else None,
        until=until,
    )


def holds_in(data: dict[str, Any]) -> list[Hold]:
    entries = data.get(HOLDS_KEY)
    if not isinstance(entries, list):
        return []
    return [h for e in entries if (h := parse_hold(e)) is not None]


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError, OverflowError):
        return None


def is_active(
    hold: Hold, now: datetime, started: Callable[[int], float | None] = process_start
) -> bool:
    """Not past its end time, and its holder (if it has one) still the same live process."""
    if hold.until is not None and now >= hold.until:
        return False
    if hold.pid is not None:
        began = started(hold.pid)
        if began is None:
            return False
        if hold.pid_started is not None and abs(began - hold.pid_started) > START_TOLERANCE_S:
            return False  # the pid now belongs to another process
    return True


def active_holds(
    data: dict[str, Any],
    now: datetime | None = None,
    started: Callable[[int], float | None] = process_start,
) -> list[Hold]:
    now = now or utc_now()
    return [h for h in holds_in(data) if is_active(h, now, started)]


def winning_hold(holds: list[Hold]) -> Hold | None:
    """The least demanding active hold (the oldest of equals), or None."""
    if not holds:
        return None
    return min(enumerate(holds), key=lambda ih: (_rank(ih[1].mode), ih[0]))[1]


def _rank(mode: Mode) -> float:
    # parse_hold and add_hold keep only modes that have a rank.
    rank = mode.spec.hold_rank
    return rank if rank is not None else len(hold_modes())


def _clean(data: dict[str, Any], now: datetime) -> list[Hold]:
    """Drop ended holds from ``data``; keep malformed entries (someone typed them)."""
    entries = data.get(HOLDS_KEY)
    if not isinstance(entries, list):
        return []
    ended, kept = [], []
    for e in entries:
        h = parse_hold(e)
        if h is not None and not is_active(h, now):
            ended.append(h)
        else:
            kept.append(e)
    if ended:
        data[HOLDS_KEY] = kept
    return ended


def _hold_mode(mode: Mode | str) -> Mode:
    from perfmode.settings.store import parse_mode

    m = parse_mode(mode)
    if m.spec.hold_rank is None:
        raise UsageError(
            f"a hold keeps one mode: {', '.join(x.value for x in hold_modes())} "
            f"(not {m.value}); to follow the computer's use, `perfmode set auto`"
        )
    return m


def add_hold(
    store: SettingsStore,
    mode: Mode | str,
    *,
    reason: str = "",
    pid: int | None = None,
    until: datetime | None = None,
) -> Hold:
    """Record a hold, held by process ``pid`` or until ``until`` (one of them)."""
    m = _hold_mode(mode)
    if (pid is None) == (until is None):
        raise UsageError("a hold needs a holder process or an end time (one of them)")
    started = None
    if pid is not None:
        started = process_start(pid)
        if started is None:
            raise UsageError(f"no process with pid {pid} to hold the mode")
    hold = Hold(
        id=secrets.token_hex(3),
        mode=m,
        reason=reason.strip()[:REASON_LIMIT],
        created_at=utc_now(),
        pid=pid,
        pid_started=started,
        until=until,
    )

    def change(data: dict[str, Any], _: Settings) -> None:
        _clean(data, utc_now())
        entries = data.get(HOLDS_KEY)
        data[HOLDS_KEY] = [*(entries if isinstance(entries, list) else []), hold.to_json()]

    store.update(change)
    return hold


def release_hold(store: SettingsStore, hold_id: str) -> Hold | None:
    """Remove hold ``hold_id``; the hold removed, or None when there was none (or it ended)."""
    found: list[Hold] = []

    def change(data: dict[str, Any], _: Settings) -> bool:
        found.clear()
        ended = _clean(data, utc_now())
        entries = data.get(HOLDS_KEY)
        if not isinstance(entries, list):
            return bool(ended)
        kept = []
        for e in entries:
            h = parse_hold(e)
            if h is not None and h.id == hold_id:
                found.append(h)
            else:
                kept.append(e)
        data[HOLDS_KEY] = kept
        return bool(found or ended)

    store.update(change)
    return found[0] if found else None


def clean_holds(store: SettingsStore) -> list[Hold]:
    """Remove ended holds (a write only when there are some); the holds removed."""
    ended: list[Hold] = []

    def change(data: dict[str, Any], _: Settings) -> bool:
        ended[:] = _clean(data, utc_now())
        return bool(ended)

    if any(not is_active(h, utc_now()) for h in holds_in(store.read().data)):
        store.update(change)
    return ended


def set_mode_releasing_holds(
    store: SettingsStore, mode: Mode | str, changed_by: str
) -> tuple[Settings, list[Hold]]:
    """A person's ``perfmode set``: the new mode, and every active hold released (as
    power-profiles-daemon does when the user picks a profile)."""
    from perfmode.settings.store import parse_mode

    m = parse_mode(mode)
    released: list[Hold] = []

    def change(data: dict[str, Any], _: Settings) -> None:
        now = utc_now()
        _clean(data, now)
        released[:] = [h for h in holds_in(data) if is_active(h, now)]
        if isinstance(data.get(HOLDS_KEY), list):
            data[HOLDS_KEY] = [e for e in data[HOLDS_KEY] if parse_hold(e) is None]
        apply_mode(data, m, changed_by, now)

    return store.update(change), released


_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|min|s)", re.IGNORECASE)
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
MAX_HOLD = timedelta(days=30)


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``45s``, ``1d``: a hold's length (up to 30 days)."""
    t = str(text).strip().lower().replace(" ", "")
    parts = _SPAN.findall(t)
    if not t or "".join(f"{n}{u}" for n, u in parts) != t:
        raise UsageError(
            f"bad duration {text!r} for --for; use a number and a unit, e.g. 2h, 90m, 1h30m, 45s"
        )
    span = timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in parts))
    if not timedelta(seconds=1) <= span <= MAX_HOLD:
        raise UsageError(f"--for {text} is out of range; a hold lasts from 1 s to 30 days")
    return span
