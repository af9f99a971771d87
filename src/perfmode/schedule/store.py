"""The timetable in settings.json, and reconcile: write the mode the timetable wants now.

Everything here goes through ``SettingsStore``; the decision to write happens inside its
lock, so a ``perfmode set`` racing with the daemon is never overwritten.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from perfmode.base.clock import format_time, human_span, in_future, utc_now
from perfmode.errors import UsageError
from perfmode.schedule.timetable import Boundary, Timetable, hhmm, last_boundary
from perfmode.settings.store import HAND_EDIT, Settings, SettingsStore, apply_mode

log = logging.getLogger("perfmode.schedule")

SCHEDULE_KEY = "schedule"
CHANGED_BY = "schedule"


def timetable_of(settings: Settings) -> tuple[Timetable | None, str | None]:
    """The timetable a settings read holds, or why there is none usable (never raises)."""
    if settings.corrupt:
        return None, settings.problem
    raw = settings.data.get(SCHEDULE_KEY)
    if raw is None:
        return None, None
    try:
        return Timetable.from_dict(raw), None
    except UsageError as e:
        return None, f"settings.json has a bad schedule: {e}; it is ignored until fixed"
    except Exception as e:  # a hand edit can hold anything; the daemon must keep going
        return None, (
            f"settings.json has a bad schedule ({type(e).__name__}); it is ignored until fixed"
        )


def store_timetable(store: SettingsStore, timetable: Timetable) -> Settings:
    new = timetable.to_dict()

    def change(data: dict[str, Any], current: Settings) -> bool | None:
        if data.get(SCHEDULE_KEY) == new:
            return False
        data[SCHEDULE_KEY] = new
        return None

    return store.update(change)


def clear_timetable(store: SettingsStore) -> bool:
    """Remove the timetable; False when there was none (and nothing was written)."""
    removed = []

    def change(data: dict[str, Any], current: Settings) -> bool | None:
        removed.clear()  # called again when the file changed under the writer
        if SCHEDULE_KEY not in data:
            return False
        removed.append(data.pop(SCHEDULE_KEY))
        return None

    store.update(change)
    return bool(removed)


def reconcile(
    store: SettingsStore, timetable: Timetable | None = None, now: datetime | None = None
) -> Settings | None:
    """Write the mode the timetable wants at ``now``, unless someone changed it since.

    The boundary in force is the latest one at or before ``now``; the mode is written
    (``changed_by: schedule``) only when the file's ``changed_at`` is older than that
    boundary and the mode differs. So a manual change stands until the next boundary, a
    boundary missed while nobody ran is applied on the next call, and a second call
    writes nothing. ``timetable`` defaults to the one in the file, read under the lock.
    Returns what was written, or None.
    """
    applied: list[tuple[Boundary, Timetable, datetime]] = []
    future: list[datetime] = []

    def change(data: dict[str, Any], current: Settings) -> bool | None:
        applied.clear()  # called again when the file changed under the writer
        future.clear()
        tt = timetable or timetable_of(current)[0]
        if tt is None:
            return False
        t = now or utc_now()
        boundary = last_boundary(tt, t)
        if boundary is None:
            return False
        changed_at = current.changed_at
        if changed_at is not None and in_future(changed_at, t):
            # Trusted, a stamp in the future would hold off every boundary until it comes
            # (the clock was set back, or it was typed). Count the change from now instead,
            # and write that down, so the next boundary switches as it should.
            future.append(changed_at)
            data["changed_at"] = format_time(t)
            if current.ok:
                data["changed_to"] = current.mode.value
                data["changed_by"] = current.changed_by or HAND_EDIT
            return None
        if changed_at is not None and changed_at >= boundary.at:
            return False
        if current.ok and current.mode == boundary.mode:
            return False
        apply_mode(data, boundary.mode, CHANGED_BY, t)
        applied.append((boundary, tt, t))
        return None

    result = store.update(change)
    if future:
        log.warning(
            "⚠️  settings.json says the mode was changed at %s, in the future; "
            "counting it from now (%s)",
            format_time(future[0]),
            format_time(now or utc_now()),
        )
    if not applied:
        return None
    boundary, tt, t = applied[0]
    log.info("%s", flip_line(boundary, tt, t))
    return result


def flip_line(boundary: Boundary, tt: Timetable, now: datetime) -> str:
    """``⏰ 18:00 America/New_York → performance (schedule)``, with how late if it was."""
    local = boundary.local
    when = hhmm(local.time())
    if local.date() != now.astimezone(local.tzinfo).date():
        when = f"{local:%a %Y-%m-%d} {when}"
    late = now - boundary.at
    note = (
        f", applied {human_span(late.total_seconds())} late" if late > timedelta(seconds=90) else ""
    )
    return f"⏰ {when} {tt.tz} → {boundary.mode.value} ({CHANGED_BY}{note})"
