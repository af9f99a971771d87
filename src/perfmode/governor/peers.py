"""The home's live runs, read from their status files: the input of the home's budget.

A run is live while the process that wrote its status.json lives: its ``pid`` and the
process start time it recorded (``pid_started``) must both match a running process, as
holds check theirs, so a pid the system gave to another process after a trainer died (kill
-9 included) holds no share, and the share comes free at the next look. A run that finished,
stopped or failed, or whose process is suspended (Ctrl-Z), holds none either.

Each file is read as a :class:`~perfmode.status.model.TrainerStatus`, so whatever it holds
reads as a run or as none, never an exception. Reading costs one small file and one /proc
lookup per run; trainers look every ``REFRESH_S`` (and while they wait, as often), so with
dozens of runs it stays well under 1 % of a core each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from perfmode.base.home import Home
from perfmode.governor.budget import Peer
from perfmode.settings.holds import START_TOLERANCE_S
from perfmode.status.file import read_status
from perfmode.status.model import TrainerStatus

REFRESH_S = 0.5
"""How often a trainer reads the home's status files again (a core freed is seen this fast)."""
LIVE_STATES = frozenset({"training", "waiting", "paused"})


def peer_of(run: str, status: TrainerStatus) -> Peer | None:
    """The run of ``status`` if its own process still runs, else None."""
    pid, started = status.run.pid, status.run.pid_started
    if status.run.state not in LIVE_STATES:
        return None
    if pid is None or not 0 < pid < 2**31 or started is None:
        return None
    try:
        proc = psutil.Process(pid)
        began = proc.create_time()
        state = proc.status()
    except psutil.AccessDenied:
        return None
    except (psutil.Error, OSError, ValueError, OverflowError):
        return None
    if abs(began - started) > START_TOLERANCE_S:
        return None  # the pid now belongs to another process
    if state in (
        psutil.STATUS_ZOMBIE,
        psutil.STATUS_DEAD,
        psutil.STATUS_STOPPED,
        psutil.STATUS_TRACING_STOP,
    ):
        return None
    cores = status.budget.cores
    if cores is None or not 1 <= cores <= 1024:
        cores = 1
    return Peer(run, pid, float(started), cores)


def live_peers(home: Home) -> list[Peer]:
    """The home's live runs (any order; :func:`perfmode.governor.budget.in_line` orders)."""
    found = []
    for run in home.run_names():
        status = read_status(home.status_file(run))
        if status is not None and (peer := peer_of(run, status)) is not None:
            found.append(peer)
    return found


class HomePeers:
    """:func:`live_peers`, read again at most every ``refresh_s`` seconds."""

    def __init__(
        self,
        home: Home,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = home
        self.refresh_s = refresh_s
        self._clock = clock
        self._at = -float("inf")
        self._peers: list[Peer] = []

    def __call__(self) -> list[Peer]:
        now = self._clock()
        if now - self._at >= self.refresh_s:
            self._at = now
            self._peers = live_peers(self.home)
        return self._peers

    def pids(self) -> list[int]:
        """The live trainers' pids (for the load sensor, which counts them apart)."""
        return [p.pid for p in self()]
