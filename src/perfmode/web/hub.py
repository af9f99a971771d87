"""Watches the home's files and pushes what changed to every open page.

While a page is open the hub takes one ``os.stat`` per watched file every 0.25 s (what
the trainer does with settings.json) and rebuilds the state only when a signature changed,
or every 2 s so that a trainer or daemon that died (no file changes) shows as gone. A state
identical to the last one pushed is not sent again; metrics rows are sent as they appear.
With no page open it only reaps the trainers it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from perfmode.base.home import Home
from perfmode.web.launcher import Launcher
from perfmode.web.metrics import MAX_POINTS, MetricsTail
from perfmode.web.snapshot import build_snapshot

log = logging.getLogger(__name__)

POLL_S = 0.25
REFRESH_S = 2.0
# A page that stops reading (a suspended laptop's browser) is dropped past this backlog;
# EventSource reconnects and starts over from a full state.
MAX_BACKLOG = 200

Signature = tuple[Any, ...]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Hub:
    def __init__(self, home: Home, launcher: Launcher) -> None:
        self.home = home
        self.launcher = launcher
        self.subscribers: set[asyncio.Queue[str | None]] = set()
        self.state: dict[str, Any] = {}
        self.tails: dict[str, MetricsTail] = {}
        self._state_key = ""
        self._signature: Signature | None = None
        self._refreshed = 0.0
        self._runs_sig: Any = object()
        self._runs: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._ticking = threading.Lock()
        self._loop_thread: int | None = None

    # -- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        failing = False
        while True:
            await asyncio.sleep(POLL_S)
            try:
                # File reads off the event loop: a huge metrics.csv must not stall requests.
                await asyncio.to_thread(self.tick)
                failing = False
            except Exception:
                # Whatever a file holds, the page keeps updating once it is fixed: say it once.
                if not failing:
                    log.exception("⚠️  reading %s failed; retrying", self.home.root)
                failing = True

    def tick(self, force: bool = False) -> None:
        """Re-read what changed; runs in a worker thread, one tick at a time."""
        with self._ticking:
            self._tick(force)

    def _tick(self, force: bool) -> None:
        exited = self.launcher.poll()
        if not self.subscribers and not force:
            return
        sig = self._files_signature()
        now = time.monotonic()
        if not (force or exited or sig != self._signature or now - self._refreshed >= REFRESH_S):
            return
        self._signature, self._refreshed = sig, now
        self._refresh_state()
        self._refresh_metrics()

    def _refresh_state(self) -> None:
        state = build_snapshot(self.home, self.launcher)
        key = json.dumps({**state, "server_time": None}, sort_keys=True, default=str)
        self.state = state
        if key != self._state_key:
            self._state_key = key
            self.publish(sse("state", state))

    def _refresh_metrics(self) -> None:
        for run in self._run_names():
            tail = self.tails.get(run)
            if tail is None:
                tail = self.tails[run] = MetricsTail(self.home.metrics_file(run))
            reset, first = tail.poll()
            n = len(tail.series)
            if reset or (n and first == 0) or n - first > MAX_POINTS:
                # Pages that have none of these rows, or more new rows than a chart shows,
                # get the whole series thinned: a run that appears with a long file while a
                # page is open is one bounded event, as it is for a page that opens later.
                self.publish(self._metrics_message(run, tail, reset=True))
            elif first < n:
                cols = tail.series.columns(first)
                self.publish(sse("metrics", {"run": run, "reset": False, "cols": cols}))
        for run in set(self.tails) - set(self._run_names()):
            del self.tails[run]

    def _metrics_message(self, run: str, tail: MetricsTail, reset: bool = True) -> str:
        cols = tail.series.columns(0, MAX_POINTS)
        return sse("metrics", {"run": run, "reset": reset, "cols": cols})

    def _run_names(self) -> list[str]:
        sig = _stat(self.home.runs_dir)
        if sig != self._runs_sig:
            self._runs_sig = sig
            try:
                self._runs = self.home.run_names()
            except OSError:
                self._runs = []
            # A folder name that is not a valid run name is reported by the state, not here.
            self._runs = [r for r in self._runs if _valid_run(self.home, r)]
        return self._runs

    def _files_signature(self) -> Signature:
        h = self.home
        parts: list[Any] = [
            _stat(p) for p in (h.settings, h.runs_dir, h.daemon_pid, h.root, h.root / "configs")
        ]
        for run in self._run_names():
            parts += [_stat(h.status_file(run)), _stat(h.metrics_file(run))]
        return tuple(parts)

    # -- pages -----------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[str | None]:
        """A queue for one page, holding the whole picture of the last tick (the caller
        ticks first, off the loop)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
            return queue
        queue.put_nowait(sse("state", self.state))
        for run, tail in self.tails.items():
            if len(tail.series):
                queue.put_nowait(self._metrics_message(run, tail))
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self.subscribers.discard(queue)

    def publish(self, message: str) -> None:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # asyncio queues belong to the loop: hand the message over from the worker.
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._publish_now, message)
            return
        self._publish_now(message)

    def _publish_now(self, message: str) -> None:
        for queue in list(self.subscribers):
            if queue.qsize() >= MAX_BACKLOG:
                self.subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(message)

    def close(self) -> None:
        """End every page's stream (their browsers reconnect to whatever serves next)."""
        self.closed = True
        for queue in list(self.subscribers):
            queue.put_nowait(None)
        self.subscribers.clear()

    def close_soon(self) -> None:
        """``close`` from a signal handler: on the loop's own turn."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)


def _valid_run(home: Home, run: str) -> bool:
    try:
        home.run_dir(run)
    except Exception:
        return False
    return True
