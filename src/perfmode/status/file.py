"""status.json: what a trainer actually applied, written by the trainer, read by everyone.

A status file is read by ``perfmode status`` and by a trainer refusing to start twice, so
it is read like settings.json: bounded, regular files only, never blocking, and any JSON
at all comes back as a :class:`~perfmode.status.model.TrainerStatus` or None, never an
exception.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from perfmode.base.clock import FUTURE_TOLERANCE_S, format_time, parse_time, utc_now
from perfmode.base.fsutil import atomic_write_json
from perfmode.base.home import Home
from perfmode.base.smallfile import read_small
from perfmode.settings.holds import START_TOLERANCE_S, process_start
from perfmode.status.model import RunView, TrainerStatus

# A trainer heartbeats every few seconds (progress.HEARTBEAT_S), even in the middle of a
# long update; this much silence from a live pid means it hangs or was stopped.
NOT_RESPONDING_AFTER_S = 30.0
# A pid a new process took over was created after the old one's last heartbeat.
_CREATE_TIME_SLACK_S = 2.0


def write_status(path: Path, status: dict[str, Any]) -> None:
    atomic_write_json(path, status)


def read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        raw, _ = read_small(path)
        # NaN and Infinity are not JSON; read them as null so `status --json` prints JSON.
        data = json.loads(raw, parse_constant=lambda _: None)
    except Exception:  # a FIFO, a huge file, RecursionError, a 5,000-digit number: unusable
        return None
    return data if isinstance(data, dict) else None


def read_status(path: Path) -> TrainerStatus | None:
    """A run's status; None without a file or with one that holds no JSON object."""
    data = read_json_object(path)
    return None if data is None else TrainerStatus.from_json(data)


@dataclass(frozen=True)
class Liveness:
    alive: bool
    """The process that wrote the status lives (so it still holds its run)."""
    responding: bool
    """...and it heartbeats: not stopped, not hung. ``running`` in a run's status."""
    suspended: bool
    """Stopped by SIGSTOP or Ctrl-Z."""
    last_heartbeat: datetime | None


def liveness(status: TrainerStatus, now: datetime | None = None) -> Liveness:
    now = now or utc_now()
    pid = status.run.pid
    beat = parse_time(status.run.heartbeat)
    gone = Liveness(False, False, False, beat)
    if pid is None or not 0 < pid < 2**31 or beat is None:
        return gone
    try:
        proc = psutil.Process(pid)
        if proc.create_time() > beat.timestamp() + _CREATE_TIME_SLACK_S:
            return gone  # the pid was reused after the trainer died
        state = proc.status()
    except psutil.AccessDenied:
        state = psutil.STATUS_RUNNING
    except (psutil.Error, OSError, ValueError, OverflowError):
        return gone
    if state in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return gone
    suspended = state in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    age = (now - beat).total_seconds()
    fresh = -FUTURE_TOLERANCE_S <= age <= NOT_RESPONDING_AFTER_S
    return Liveness(True, fresh and not suspended, suspended, beat)


def is_writer(status: TrainerStatus) -> bool:
    """The live process at the status's pid is the one that wrote it: it started at the
    ``pid_started`` the trainer recorded of itself (a pid alone may name any process)."""
    pid, started = status.run.pid, status.run.pid_started
    if pid is None or not 0 < pid < 2**31 or started is None:
        return False
    began = process_start(pid)
    return began is not None and abs(began - started) <= START_TOLERANCE_S


def is_alive(status: TrainerStatus, now: datetime | None = None) -> bool:
    """The process that wrote ``status`` lives (responding or not): it holds its run."""
    return liveness(status, now).alive


def _heartbeat_key(view: RunView) -> float:
    beat = parse_time(view.status.run.heartbeat)
    return beat.timestamp() if beat else -math.inf


def run_statuses(home: Home, now: datetime | None = None) -> list[RunView]:
    """Every run's last status and whether its process lives, newest heartbeat first."""
    found = []
    for run in home.run_names():
        status = read_status(home.status_file(run))
        if status is None:
            continue
        status.run.run = run  # the folder's name, whatever the file says
        live = liveness(status, now)
        since = None
        if live.alive and not live.responding and live.last_heartbeat is not None:
            since = format_time(live.last_heartbeat)
        found.append(RunView(status, live.responding, live.alive, live.suspended, since))
    found.sort(key=_heartbeat_key, reverse=True)
    return found
