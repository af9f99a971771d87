"""``perfmode status``: one dict that the CLI prints as a table or as JSON.

A run in it is a :class:`~perfmode.status.model.RunView` as JSON; the table reads it back
into those types (:meth:`RunView.from_json`), the page's script reads the same keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from perfmode.schedule import schedule_report
from perfmode.settings.holds import active_holds
from perfmode.settings.store import SettingsStore
from perfmode.status.file import run_statuses


def build_status(home: Home, now: datetime | None = None) -> dict[str, Any]:
    now = now or utc_now()
    settings = SettingsStore(home.settings).read()
    runs = run_statuses(home, now)
    # A trainer that responds comes before one that lives but does not (stopped, hung).
    running = [r for r in runs if r.running] + [r for r in runs if r.alive and not r.running]
    return {
        "home": str(home.root),
        "settings_file": str(home.settings),
        "requested_mode": settings.mode.value,
        "changed_by": settings.changed_by,
        "changed_at": format_time(settings.changed_at) if settings.changed_at else None,
        "settings_ok": settings.ok,
        "settings_problem": settings.problem,
        "settings_missing": settings.missing,
        "holds": [h.to_json() for h in active_holds(settings.data, now)],
        # The trainer whose process lives (newest heartbeat), or None; see runstatus.
        "trainer": running[0].to_json() if running else None,
        "runs": [r.to_json() for r in runs],
        "schedule": schedule_report(home, now, settings),
    }
