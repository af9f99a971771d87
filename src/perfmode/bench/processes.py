"""The bench's children: a subprocess with its output in a file, measured and stopped as a
whole process tree; and the bench's one stop, however many copies of a Ctrl-C (or SIGTERM)
reach it and its trainer, in whatever order."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from perfmode.base.platform import own_group_kwargs, stop_child, stop_signals
from perfmode.errors import PerfmodeError
from perfmode.training.stop import StopRequest

STOP_TIMEOUT_S = 30.0
"""How long a child may take to stop after SIGTERM before it is killed."""
# How a child ends that a Ctrl-C or SIGTERM stopped: killed by it, or exiting as a shell would.
STOP_STATUSES = frozenset({-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + 15})


def tree_members(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(root: psutil.Process) -> float:
    """User + system CPU time of ``root`` and its live children."""
    total = 0.0
    for p in tree_members(root):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def tree_rss(root: psutil.Process) -> int:
    total = 0
    for p in tree_members(root):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class Child:
    """A subprocess of the bench with its output in a log file; stopped with its whole tree."""

    def __init__(self, name: str, cmd: list[str], log: Path, *, stdin: bool = False) -> None:
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                # SB3 makes a log folder in the system temp dir at every learn(): in ours.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "SB3_LOGDIR": str(log.parent / "sb3")},
                **own_group_kwargs(),
            )
        self.root = psutil.Process(self.proc.pid)

    def check_alive(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Raise when the child has exited: KeyboardInterrupt when it was stopped (``stopped()``
        says so, or a stop signal's status), else the error of a child that gave up."""
        code = self.proc.poll()
        if code is None:
            return
        if code in STOP_STATUSES or stopped():
            # The terminal's Ctrl-C reached the child before the bench saw its own copy:
            # one Ctrl-C, one stop, whichever process heard it first. The bench's copy,
            # however late, is that same stop.
            stop_begun()
            raise KeyboardInterrupt
        raise PerfmodeError(
            f"the {self.name} exited (status {code}) before the bench was done: {self.last_line()}"
        )

    def last_line(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        return next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """SIGTERM (a trainer saves and exits), then SIGKILL for whatever is left."""
        family = tree_members(self.root)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            stop_child(self.proc)
            # Time to save, cut short by a person's second Ctrl-C (never by a copy of the first).
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while not _hurried() and time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
                    self.proc.wait(0.1)
                    break
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()  # psutil checks the pid still names the same process
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(STOP_TIMEOUT_S)


class OneStop:
    """Ctrl-C or SIGTERM on the bench. The first unwinds the run (``KeyboardInterrupt``),
    and the children are stopped. From then on no signal raises: a copy of that Ctrl-C
    (the terminal sends one to the trainer too, which may act first) is the same stop
    wherever it lands (the run's cleanup, the command's last line, its exit); a Ctrl-C after
    :data:`~perfmode.training.stop.SAME_STOP_S` is a person's second one, and stops the
    children at once instead of waiting for them to save. The window is the trainer's own
    (:class:`~perfmode.training.stop.StopRequest`), so both agree on what one Ctrl-C is.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.request = StopRequest(clock)
        self.hurry = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.request.begin():
            raise KeyboardInterrupt
        if signum == signal.SIGINT and not self.request.is_copy():
            self.hurry = True


_current: OneStop | None = None
"""The bench's stop while one is installed: signals reach the whole process, and so does
news of a stop from a child."""


def stop_begun() -> None:
    """A child exited on the Ctrl-C meant for the bench too: the stop begins now."""
    if _current is not None:
        _current.request.begin()


def _hurried() -> bool:
    return _current is not None and _current.hurry


@contextlib.contextmanager
def one_stop(clock: Callable[[], float] = time.monotonic) -> Iterator[OneStop]:
    """Install :class:`OneStop` on the stop signals (main thread only).

    Left by a stop, the stop signals are ignored from then on: the process has stopped
    its children and is on its way out, and a late copy of the Ctrl-C must not land on
    Python's default handler in the caller's ``except`` or at exit (a second interrupt, a
    traceback, or death by SIGINT once the interpreter has put the default back). Left
    normally, the previous handlers are put back.
    """
    global _current
    stop = OneStop(clock)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop.handle) for s in stop_signals()}
    _current = stop
    try:
        yield stop
    finally:
        _current = None
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if stop.request.requested else handler)


def read_event(path: Path, name: str) -> dict[str, Any] | None:
    """The first ``{"event": name, ...}`` line of a JSON-lines file, or None."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("event") == name:
                return event
    return None
