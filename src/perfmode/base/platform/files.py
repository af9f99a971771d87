"""Replacing a file, its mode and durability, and what the machine's files say about it.

On Windows ``os.replace`` over a file that another process has open (the trainer reading
``settings.json``, the page reading ``status.json``, a virus scanner, a sync tool) fails with
``PermissionError``: CPython opens files without ``FILE_SHARE_DELETE``. Such opens are
short, so the replace is tried again for a bounded time with a growing pause, the way
filelock retries its lock; what still fails says so in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from perfmode.base.platform.system import SYSTEM
from perfmode.errors import PerfmodeError

REPLACE_RETRY_S = 1.0
"""How long a Windows replace keeps trying while another program holds the file open."""
_FIRST_PAUSE_S = 0.01
_LONGEST_PAUSE_S = 0.1


class ReplaceBlocked(PerfmodeError, PermissionError):
    """A replace still refused after ``REPLACE_RETRY_S``. Also a ``PermissionError``, so
    code that survives a failed write (a trainer's status file) survives this one too."""

    def __init__(self, path: Path | str, waited_s: float) -> None:
        line = (
            f"cannot replace {path}: another program keeps it open (still refused after "
            f"{waited_s:.1f} s; an editor, a virus scanner or a sync tool?); close it and "
            "try again"
        )
        PermissionError.__init__(self, 13, line, str(path))
        self.exit_code = 1

    def __str__(self) -> str:
        return str(self.strerror)


def retry_sharing_violation(
    replace: Callable[[], None],
    path: Path | str,
    *,
    limit_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``replace`` until it does not raise ``PermissionError`` or ``limit_s`` (default
    ``REPLACE_RETRY_S``) passed."""
    if limit_s is None:
        limit_s = REPLACE_RETRY_S
    start = clock()
    pause = _FIRST_PAUSE_S
    while True:
        try:
            replace()
            return
        except PermissionError:
            waited = clock() - start
            if waited >= limit_s:
                raise ReplaceBlocked(path, waited) from None
        sleep(min(pause, max(limit_s - waited, 0.0)))
        pause = min(pause * 2, _LONGEST_PAUSE_S)


def replace_file(src: Path | str, dst: Path | str, *, system: str = SYSTEM) -> None:
    """``os.replace(src, dst)``; on Windows, through a sharing violation that passes."""
    if system != "windows":
        os.replace(src, dst)
        return
    retry_sharing_violation(lambda: os.replace(src, dst), dst)


def set_file_mode(fd: int, mode: int) -> None:
    """Permissions of an open file. Windows has no ``os.fchmod`` before Python 3.13, and
    no permission bits but read-only: a new file there keeps the folder's ACL."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable: the entry is on disk only once the folder is
    (POSIX). Windows has no directory fds, and there a replace is as durable as it gets."""
    if SYSTEM == "windows":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_unlinked(
    folder: Path, name: str, flags: int, mode: int = 0o666, *, system: str = SYSTEM
) -> int:
    """An fd on ``folder/name`` where neither ``folder`` (its last part) nor ``name`` is a
    symlink: one planted at either is refused with ``ELOOP``, never followed.

    POSIX: the folder is opened ``O_NOFOLLOW | O_DIRECTORY`` and the file through that fd
    (``dir_fd``) with ``O_NOFOLLOW``, so a link swapped in between the two cannot redirect
    the open. Windows has neither ``O_NOFOLLOW`` nor ``dir_fd``: both are looked at
    (symlinks and junctions) just before the open, which is the most it allows.
    """
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    if system != "windows" and nofollow and os.open in os.supports_dir_fd:
        folder_flags = os.O_RDONLY | nofollow | cloexec | getattr(os, "O_NONBLOCK", 0)
        try:
            dfd = os.open(folder, folder_flags | getattr(os, "O_DIRECTORY", 0))
        except NotADirectoryError:
            if os.path.islink(folder):  # Linux says ENOTDIR for a link with O_DIRECTORY
                raise OSError(errno.ELOOP, "is a symbolic link", str(folder)) from None
            raise
        try:
            return os.open(name, flags | nofollow | cloexec, mode, dir_fd=dfd)
        finally:
            os.close(dfd)
    for path in (folder, folder / name):
        if os.path.islink(path) or _is_junction(path):
            raise OSError(errno.ELOOP, "is a symbolic link", str(path))
    return os.open(folder / name, flags | getattr(os, "O_BINARY", 0) | cloexec, mode)


def _is_junction(path: Path) -> bool:
    is_junction = getattr(os.path, "isjunction", None)  # Python 3.12+; Windows only is true
    return bool(is_junction and is_junction(path))


def open_fd_path(fd: int) -> Path | None:
    """A path that names the open file ``fd`` itself, whatever its name points at by now
    (Linux's ``/proc/self/fd``); None where the system has none."""
    proc = Path(f"/proc/self/fd/{fd}")
    return proc if SYSTEM == "linux" and proc.exists() else None


def cpuinfo_model(text: str) -> str | None:
    """The ``model name`` in Linux's ``/proc/cpuinfo``."""
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip() or None
    return None


def cpu_model(system: str = SYSTEM) -> str | None:
    """The CPU's marketing name ("AMD Ryzen 7 5800X ..."), or what Python knows."""
    with contextlib.suppress(Exception):
        if system == "linux":
            found = cpuinfo_model(Path("/proc/cpuinfo").read_text())
            if found:
                return found
        elif system == "macos":
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            if out:
                return out
        elif system == "windows":
            import winreg  # type: ignore[import-not-found,unused-ignore]

            key = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as k:  # type: ignore[attr-defined,unused-ignore]
                name = winreg.QueryValueEx(k, "ProcessorNameString")[0]  # type: ignore[attr-defined,unused-ignore]
            if name:
                return str(name).strip()
    return platform.processor() or None
