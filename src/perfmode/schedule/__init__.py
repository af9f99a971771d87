"""The schedule: a timetable in settings.json and a daemon that follows it.

``timetable`` is pure (which mode, when); ``store`` reads and writes the timetable and
reconciles the mode; ``daemon`` runs one reconciler per home. See docs/schedule.md.

May import: errors, base, config, settings.
"""

from perfmode.schedule.daemon import DaemonLock, run_daemon, running_daemon_pid, schedule_report
from perfmode.schedule.store import clear_timetable, reconcile, store_timetable, timetable_of
from perfmode.schedule.timetable import (
    Boundary,
    Timetable,
    boundaries_between,
    last_boundary,
    next_switches,
    parse_hhmm,
)

__all__ = [
    "Boundary",
    "DaemonLock",
    "Timetable",
    "boundaries_between",
    "clear_timetable",
    "last_boundary",
    "next_switches",
    "parse_hhmm",
    "reconcile",
    "run_daemon",
    "running_daemon_pid",
    "schedule_report",
    "store_timetable",
    "timetable_of",
]
