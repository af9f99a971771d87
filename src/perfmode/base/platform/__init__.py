"""Everything that differs between Linux, macOS and Windows, in one place.

The rest of perfmode asks this package instead of calling the OS-specific function itself:
lowering the priority, starting a trainer that a Ctrl-C elsewhere does not reach and
stopping it so that it saves, the signals a stop arrives by, replacing a file, opening one
without following a planted link, the input idle sources to try, the CPU's name, and what
the console can print. A test scans the source so that no other module calls ``os.nice``,
``os.killpg``, ``os.setsid``, ``os.replace`` or ``signal.SIGHUP``, or reads ``/proc``.

The choices are pure functions of a ``system`` name (``linux``, ``macos``, ``windows``,
``posix`` for other Unixes), defaulting to the running one, so that the Windows and macOS
branches are tested on Linux by passing that name.
"""

from __future__ import annotations

import sys
from pathlib import Path

from perfmode.base.platform.console import console_text, fit_console, streams_without_console
from perfmode.base.platform.files import (
    REPLACE_RETRY_S,
    ReplaceBlocked,
    cpu_model,
    fsync_dir,
    open_fd_path,
    open_unlinked,
    replace_file,
    set_file_mode,
)
from perfmode.base.platform.process import (
    detached_kwargs,
    forward_signal,
    forwarded_signals,
    lower_priority,
    on_stop_signals,
    own_group_kwargs,
    quit_child,
    stop_child,
    stop_process,
    stop_signals,
    stopped_with_parent,
    windows_priority_class,
)
from perfmode.base.platform.system import SYSTEM, system_of


def idle_source_names(system: str = SYSTEM) -> tuple[str, ...]:
    """The input idle sources worth trying here, in order (see ``governor/idle.py``)."""
    if system == "windows":
        return ("windows",)
    if system == "macos":
        return ("macos",)
    if system == "linux":
        return ("x11", "logind")
    return ("x11",)  # another Unix desktop: X11 is what it may have


def reuse_address_is_safe(system: str = SYSTEM) -> bool:
    """Whether SO_REUSEADDR only lets a restarted server take its port back: on POSIX; on
    Windows it would let a second server bind the same port."""
    return system != "windows"


def python_without_console(python: str = sys.executable) -> str:
    """``pythonw.exe`` beside a Windows ``python.exe``, where it is: a service needs no
    console window (its lines go to ``--log-file``)."""
    p = Path(python)
    if p.name.lower() == "python.exe" and p.with_name("pythonw.exe").exists():
        return str(p.with_name("pythonw.exe"))
    return python


__all__ = [
    "REPLACE_RETRY_S",
    "SYSTEM",
    "ReplaceBlocked",
    "console_text",
    "cpu_model",
    "detached_kwargs",
    "fit_console",
    "forward_signal",
    "forwarded_signals",
    "fsync_dir",
    "idle_source_names",
    "lower_priority",
    "on_stop_signals",
    "open_fd_path",
    "open_unlinked",
    "own_group_kwargs",
    "python_without_console",
    "quit_child",
    "replace_file",
    "reuse_address_is_safe",
    "set_file_mode",
    "stop_child",
    "stop_process",
    "stop_signals",
    "stopped_with_parent",
    "streams_without_console",
    "system_of",
    "windows_priority_class",
]
