"""status.json: what a trainer actually applied, written by the trainer, read by everyone."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from perfmode.fsutil import atomic_write_json
from perfmode.home import Home
from perfmode.settings import parse_time, utc_now

# A trainer heartbeats every few seconds even in the middle of a long update; a minute of
# silence means it is gone (or frozen, which the user wants to hear about just the same).
STALE_AFTER_S = 60.0


def write_status(path: Path, status: dict[str, Any]) -> None:
    atomic_write_json(path, status)


def read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_alive(status: dict[str, Any], now: datetime | None = None) -> bool:
    pid = status.get("pid")
    beat = parse_time(status.get("heartbeat"))
    if not isinstance(pid, int) or beat is None:
        return False
    if (now or utc_now()).timestamp() - beat.timestamp() > STALE_AFTER_S:
        return False
    if pid == os.getpid():
        return True
    return psutil.pid_exists(pid)


def run_statuses(home: Home, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every run's last status, newest heartbeat first, each with ``run`` and ``running``."""
    found = []
    for run in home.run_names():
        status = read_json_object(home.status_file(run))
        if status is None:
            continue
        status = {"run": run, **status, "running": is_alive(status, now)}
        found.append(status)
    found.sort(key=lambda s: str(s.get("heartbeat", "")), reverse=True)
    return found
