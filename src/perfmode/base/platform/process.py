"""Priority, starting a trainer apart from its starter, stopping it so that it saves.

POSIX: ``os.nice``; a child in its own session (``start_new_session``) is out of reach of
the terminal's Ctrl-C; SIGTERM asks a trainer to save and exit.

Windows: priority classes through psutil; ``CREATE_NEW_PROCESS_GROUP`` keeps the console's
Ctrl-C from a child (it still shares the console, so closing that window ends it), and
``CTRL_BREAK_EVENT`` sent to that group is the stop a trainer saves on (it arrives as
SIGBREAK). SIGTERM there is TerminateProcess: nothing is saved, so it is never the stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from perfmode.base.platform.system import SYSTEM

# Win32 priority classes (the values psutil's constants have on Windows), from lowest up.
IDLE_PRIORITY_CLASS = 0x40
BELOW_NORMAL_PRIORITY_CLASS = 0x4000
NORMAL_PRIORITY_CLASS = 0x20
ABOVE_NORMAL_PRIORITY_CLASS = 0x8000
HIGH_PRIORITY_CLASS = 0x80
REALTIME_PRIORITY_CLASS = 0x100
_CLASS_RANK = [
    IDLE_PRIORITY_CLASS,
    BELOW_NORMAL_PRIORITY_CLASS,
    NORMAL_PRIORITY_CLASS,
    ABOVE_NORMAL_PRIORITY_CLASS,
    HIGH_PRIORITY_CLASS,
    REALTIME_PRIORITY_CLASS,
]
# From nice 15 a POSIX process gets a few per cent of a busy core; Windows' nearest is the
# idle class (runs only when nothing of normal priority wants the CPU).
IDLE_FROM_NICE = 15

CREATE_NEW_PROCESS_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
CTRL_BREAK_EVENT = getattr(signal, "CTRL_BREAK_EVENT", 1)


class _Niceable(Protocol):
    def nice(self, value: int | None = None) -> int: ...


def windows_priority_class(nice: int) -> int | None:
    """The Windows priority class for a POSIX nice value; None: leave it as it is."""
    if nice <= 0:
        return None
    return IDLE_PRIORITY_CLASS if nice >= IDLE_FROM_NICE else BELOW_NORMAL_PRIORITY_CLASS


def lower_priority(nice: int, *, system: str = SYSTEM, process: _Niceable | None = None) -> None:
    """Lower this process's priority to nice value ``nice`` (never raise it; failures are
    ignored: a priority is a courtesy to the other programs, not a reason to stop).

    A level, not a step, as Windows' priority classes are: a second call changes nothing,
    so ``perfmode train`` lowers it before its imports (seconds of CPU) and the trainer
    again for callers of the library, and a process started at a lower priority keeps it.
    """
    if nice <= 0:
        return
    if system != "windows":
        if hasattr(os, "nice"):
            with contextlib.suppress(OSError):
                os.nice(max(0, nice - os.nice(0)))
        return
    wanted = windows_priority_class(nice)
    try:
        if process is None:
            import psutil

            process = psutil.Process()
        current = int(process.nice())
        # Only downwards, as on POSIX: a process already in a lower class stays there.
        if wanted is not None and _rank(wanted) < _rank(current):
            process.nice(wanted)
    except Exception:  # psutil.Error, OSError: a courtesy that failed
        return


def _rank(priority_class: int) -> int:
    try:
        return _CLASS_RANK.index(priority_class)
    except ValueError:
        return _CLASS_RANK.index(NORMAL_PRIORITY_CLASS)


def detached_kwargs(system: str = SYSTEM) -> dict[str, Any]:
    """``Popen`` arguments for a trainer that outlives its starter's Ctrl-C (the page's):
    stopped only by ``stop_process``."""
    if system == "windows":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def own_group_kwargs(system: str = SYSTEM) -> dict[str, Any]:
    """``Popen`` arguments for a child its starter stops with ``stop_child``. On POSIX
    nothing: the child stays in the terminal's group (a Ctrl-C reaches both, as a shell's
    job). On Windows its own group: ``CTRL_BREAK_EVENT`` can reach only a group leader."""
    return detached_kwargs(system) if system == "windows" else {}


def stop_process(
    pid: int, *, system: str = SYSTEM, kill: Callable[[int, int], None] = os.kill
) -> None:
    """Ask the trainer ``pid`` to save and exit. On Windows the trainer must lead its own
    process group (``detached_kwargs``): Ctrl-Break goes to a group, not a process."""
    kill(pid, CTRL_BREAK_EVENT if system == "windows" else signal.SIGTERM)


def stop_child(proc: subprocess.Popen[Any], *, system: str = SYSTEM) -> None:
    """``stop_process`` for a child started with ``own_group_kwargs``."""
    if system == "windows":
        proc.send_signal(CTRL_BREAK_EVENT)
    else:
        proc.terminate()


def quit_child(proc: subprocess.Popen[Any], *, system: str = SYSTEM) -> None:
    """The second stop, for a child that already got ``stop_process``: quit at once, as a
    trainer's second Ctrl-C does (SIGINT, on POSIX). On Windows a child in its own process
    group gets no Ctrl-C (and ``Popen.send_signal`` refuses SIGINT there): it is ended, which
    saves nothing either."""
    if system == "windows":
        proc.kill()
    else:
        proc.send_signal(signal.SIGINT)


def _present(names: list[str]) -> tuple[int, ...]:
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))


def stop_signal_names(system: str = SYSTEM, *, hangup: bool = False) -> list[str]:
    """The signals a stop arrives by. ``hangup``: also a closed terminal (SIGHUP, POSIX),
    for a daemon. Windows: Ctrl-C and Ctrl-Break (``stop_process``); SIGTERM is listed for
    ``signal.raise_signal`` only, as the OS never delivers it."""
    names = ["SIGINT", "SIGTERM"]
    if system == "windows":
        names.append("SIGBREAK")
    elif hangup:
        names.append("SIGHUP")
    return names


def stop_signals(*, hangup: bool = False) -> tuple[int, ...]:
    return _present(stop_signal_names(hangup=hangup))


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int, Any], Any], *, hangup: bool = False) -> Iterator[None]:
    """``handler`` for each of :func:`stop_signals` while inside (main thread only, as
    ``signal.signal`` is); the handlers before it are put back on the way out."""
    previous = {s: signal.signal(s, handler) for s in stop_signals(hangup=hangup)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def forwarded_signal_names(system: str = SYSTEM) -> list[str]:
    """What a starter that waits on a command (``perfmode hold``) must catch so that it
    outlives the command and releases what it holds."""
    return stop_signal_names(system, hangup=True)


def forwarded_signals() -> tuple[int, ...]:
    return _present(forwarded_signal_names())


def forward_signal(child: subprocess.Popen[Any], signum: int, *, system: str = SYSTEM) -> None:
    """Pass a stop to ``child`` the way the system can. On Windows a console's Ctrl-C and
    Ctrl-Break reach every process on the console, the child too: passing them on would
    be a second stop (and ``Popen.send_signal`` refuses SIGINT there)."""
    if system != "windows":
        child.send_signal(signum)
    elif signum == signal.SIGTERM:
        child.terminate()


# Linux: a child asks for SIGTERM when its parent dies, then becomes the command. Done in the
# new process before exec, not in a preexec_fn, which is unsafe in a parent with threads.
_DIE_WITH_PARENT = """
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)  # the parent died before the request was made
os.execv(sys.argv[2], sys.argv[2:])
"""


def stopped_with_parent(argv: list[str], *, system: str = SYSTEM) -> list[str]:
    """``argv`` (a Python command: ``sys.executable -m ...``) so that the process gets a
    stop (SIGTERM, as a Ctrl-C) if this one dies: Linux only; elsewhere ``argv`` as is."""
    if system != "linux":
        return argv
    return [argv[0], "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]
