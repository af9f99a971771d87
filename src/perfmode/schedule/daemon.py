"""The schedule daemon: one per home, in the foreground, reconciling the mode with the timetable.

It does not trust that a job fired. It reconciles at start, at the next boundary and every
minute from its main thread, so a boundary missed while the machine slept or the daemon was
down is applied within a minute. The next boundary is the timetable's own
(:func:`~perfmode.schedule.timetable.next_switches`, from ``day_boundaries``): after each
reconcile one APScheduler date job waits for that UTC instant (coalesced, no misfire grace
limit), so the night/day/weekend rules and the DST cases are written once, in the
timetable. The timetable is re-read from settings.json each time: ``perfmode schedule
--save-only`` or ``--clear`` from another shell takes effect on the next reconcile.

APScheduler is imported only here, inside ``run_daemon``: it costs ~0.1 s at import, which
``perfmode status`` should not pay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock, Timeout

from perfmode.base.clock import format_time, utc_now
from perfmode.base.envvars import env_seconds
from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.home import Home
from perfmode.base.platform import on_stop_signals
from perfmode.base.smallfile import read_small
from perfmode.errors import PerfmodeError
from perfmode.schedule.store import SCHEDULE_KEY, reconcile, timetable_of
from perfmode.schedule.timetable import Boundary, Timetable, hhmm, last_boundary, next_switches
from perfmode.settings.store import Settings, SettingsStore

log = logging.getLogger("perfmode.schedule")

TICK_ENV = "PERFMODE_SCHEDULE_TICK_S"
DEFAULT_TICK_S = 60.0
# `perfmode status` probes the lock for an instant; a daemon starting at that moment waits
# that instant out instead of reporting a daemon that is not there.
ACQUIRE_TIMEOUT_S = 1.0
JOB_ID = "boundary"


def tick_seconds(env: dict[str, str] | None = None) -> float:
    return env_seconds(
        TICK_ENV,
        DEFAULT_TICK_S,
        lambda s: 0 < s <= 3600,
        "give seconds between reconciles, 0 < s <= 3600",
        env,
    )


def read_pid(path: Path) -> int | None:
    """The pid in a pid file; None for anything else there (a FIFO, garbage, a huge number)."""
    try:
        text = read_small(path, limit=64)[0].strip()
    except (OSError, ValueError):
        return None
    if not text.isdigit() or len(text) > 9:
        return None
    pid = int(text)
    return pid if pid > 0 else None


class DaemonLock:
    """The lock that makes one daemon per home; the pid file says whose it is."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._lock = FileLock(home.daemon_lock, timeout=ACQUIRE_TIMEOUT_S)

    def acquire(self) -> None:
        self.home.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            pid = read_pid(self.home.daemon_pid)
            who = f"pid {pid}" if pid else "pid unknown"
            raise PerfmodeError(
                f"a schedule daemon already runs for {self.home.root} ({who}); stop it first"
            ) from None
        atomic_write_bytes(self.home.daemon_pid, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if read_pid(self.home.daemon_pid) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.home.daemon_pid.unlink()
        self._lock.release()

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_daemon_pid(home: Home) -> int | None:
    """The pid of this home's daemon, or None.

    A pid file outlives a killed daemon and its pid can be reused; the lock cannot, since
    the OS drops it with the process. So a live pid counts only while the lock is held.
    """
    pid = read_pid(home.daemon_pid)
    if pid is None or (pid != os.getpid() and not psutil.pid_exists(pid)):
        return None
    probe = FileLock(home.daemon_lock, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return pid
    except OSError:
        return pid  # cannot probe (read-only home): trust the live pid
    probe.release()
    return None


class _Worker:
    """One reconcile at a time, from whichever thread asks; then one job waits for the
    timetable's next boundary."""

    def __init__(
        self,
        store: SettingsStore,
        scheduler: Any,
        make_trigger: Callable[[datetime], Any],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.make_trigger = make_trigger
        self.clock = clock
        self._lock = threading.Lock()
        self.wake_at: datetime | None = None
        """The UTC instant the boundary job waits for; None: no job."""
        self._said: str | None = None
        self._failure: str | None = None

    def run_once(self, why: str = "tick") -> None:
        with self._lock:
            log.debug("schedule: reconcile (%s)", why)
            try:
                now = self.clock()
                tt, problem = timetable_of(self.store.read())
                nxt = next_switches(tt, now, 1) if tt is not None else []
                idle = None if tt else "no schedule in settings.json; idle"
                self._say(problem or idle, tt, nxt[0] if nxt else None)
                self._wake_at(nxt[0].at if nxt else None)
                if tt is not None:
                    reconcile(self.store)
            except PerfmodeError as e:
                self._failed(f"⚠️  schedule: {e}")
            except Exception as e:  # a daemon keeps going; the next tick tries again
                self._failed(f"⚠️  schedule: reconcile failed: {type(e).__name__}: {e}")
            else:
                if self._failure is not None:
                    log.info("⏰ schedule: reconcile works again")
                self._failure = None

    def _failed(self, line: str) -> None:
        # One line when a failure starts (or changes), not one per tick for as long as it lasts.
        line = line.splitlines()[0][:300]
        if line != self._failure:
            log.warning("%s", line)
        self._failure = line

    def _say(self, problem: str | None, tt: Timetable | None, nxt: Boundary | None) -> None:
        said = problem or (tt.describe() if tt else None)
        if said == self._said:
            return
        self._said = said
        if problem:
            log.warning("⚠️  %s", problem)
        elif tt is not None:
            tail = f"; next: {nxt.local:%a %H:%M} → {nxt.mode.value}" if nxt else ""
            log.info("⏰ timetable: %s%s", tt.describe(), tail)

    def _wake_at(self, at: datetime | None) -> None:
        """One job, at ``at``. The scheduler drops a date job once it has run (a clock set
        back can make that instant next again); a job left waiting for an instant that is no
        longer next (a new timetable, or a reconcile that came first after a sleep) goes."""
        if at == self.wake_at and (at is None or self.scheduler.get_job(JOB_ID) is not None):
            return
        self.scheduler.remove_all_jobs()
        if at is not None:
            self.scheduler.add_job(
                self.run_once,
                self.make_trigger(at),
                args=("boundary",),
                id=JOB_ID,
                name=f"schedule boundary {format_time(at)}",
            )
        self.wake_at = at


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM, SIGINT, SIGHUP (and Ctrl-Break on Windows) set.

    Installed before the daemon takes its lock, so a service manager that stops it while
    it starts still gets a clean exit 0 instead of death by the default handler.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals only reach the main thread; the caller sets the event
        return
    with on_stop_signals(lambda *_: stop.set(), hangup=True):
        yield stop


def run_daemon(
    home: Home, *, tick_s: float = DEFAULT_TICK_S, stop: threading.Event | None = None
) -> None:
    """Run until ``stop`` is set (see ``stop_on_signals``). The caller holds the ``DaemonLock``."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    stop = stop or threading.Event()
    if stop.is_set():  # stopped while it started
        log.info("⏰ schedule daemon stopped")
        return
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(1)},
        # The default misfire_grace_time of 1 s drops a boundary that wakes late after a
        # suspend; coalescing runs a backlog once.
        job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
    )
    worker = _Worker(SettingsStore(home.settings), scheduler, lambda at: DateTrigger(at, UTC))
    log.info("⏰ schedule daemon for %s started (pid %d)", home.root, os.getpid())
    scheduler.start()
    try:
        worker.run_once("start")
        # Event.wait runs on the monotonic clock, which stands still while the machine
        # sleeps: after a wake-up the next tick comes within tick_s of awake time.
        while not stop.wait(tick_s):
            worker.run_once("tick")
    finally:
        scheduler.shutdown(wait=True)
        log.info("⏰ schedule daemon stopped")


def schedule_report(
    home: Home, now: datetime | None = None, settings: Settings | None = None, switches: int = 1
) -> dict[str, Any] | None:
    """The ``schedule`` part of ``perfmode status``: None when no timetable and no daemon."""
    now = now or datetime.now(UTC)
    settings = settings or SettingsStore(home.settings).read()
    raw = settings.data.get(SCHEDULE_KEY)
    pid = running_daemon_pid(home)
    if raw is None and pid is None:
        return None
    tt, problem = timetable_of(settings)
    if tt is not None:
        fields: dict[str, Any] = {
            "night": hhmm(tt.night) if tt.night else None,
            "day": hhmm(tt.day) if tt.day else None,
            "weekends": tt.weekends if tt.night else None,
            "tz": tt.tz,
            "rules": [r.text for r in tt.rules],
        }
    else:
        src = raw if isinstance(raw, dict) else {}
        fields = {k: src.get(k) if isinstance(src.get(k), str) else None for k in _FIELDS}
        fields["rules"] = []
    last = last_boundary(tt, now) if tt else None
    upcoming = next_switches(tt, now, switches) if tt else []
    return {
        **fields,
        "daemon_pid": pid,
        "scheduled_mode": last.mode.value if last else None,
        "scheduled_since": _point(last)["at"] if last else None,
        "next_switch": _point(upcoming[0]) if upcoming else None,
        "next_switches": [_point(b) for b in upcoming],
        "problem": problem,
    }


_FIELDS = ("night", "day", "weekends", "tz")


def _point(b: Boundary) -> dict[str, str]:
    return {"at": format_time(b.at), "local": b.local.isoformat(), "mode": b.mode.value}
