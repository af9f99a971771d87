"""Reading the small files anyone can put in the home: bounded, regular files only, never blocking.

settings.json, status.json and schedule.pid are read by long-running processes and by
``perfmode status``. Whatever sits at those paths, a read must end at once and cheaply: a
symlink to ``/dev/zero`` must not grow the reader, a FIFO must not block it, a 2 GB file
must not be loaded. So a reader looks before it opens (a device is never opened), opens
with ``O_NONBLOCK`` (a FIFO swapped in after the look opens at once and is caught by
``fstat``), and reads at most ``limit`` bytes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

# Settings and status files are a few hundred bytes; a megabyte is room for any hand edit.
MAX_BYTES = 1 << 20

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class RefusedFile(OSError):
    """The path holds something that is not a small regular file; it was not read."""


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def _check(path: Path, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise RefusedFile(f"{path} is {kind_of(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise RefusedFile(
            f"{path} is larger than the {human_bytes(limit)} it may hold ({st.st_size:,} bytes)"
        )


def open_regular(path: Path, limit: int = MAX_BYTES) -> int:
    """A read-only fd on ``path``, which must be a regular file of at most ``limit`` bytes.

    Raises ``FileNotFoundError`` (and other ``OSError``s) as ``os.open`` does, and
    ``RefusedFile`` for anything else at the path.
    """
    path = Path(path)
    _check(path, os.stat(path), limit)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _check(path, os.fstat(fd), limit)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, path: Path, limit: int = MAX_BYTES) -> bytes:
    """All of the file behind ``fd`` from its start, refusing one that grew past ``limit``."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RefusedFile(f"{path} is larger than the {human_bytes(limit)} it may hold")
    return b"".join(chunks)


def read_small(path: Path, limit: int = MAX_BYTES) -> tuple[bytes, os.stat_result]:
    """The bytes of a small regular file and its ``fstat``."""
    fd = open_regular(path, limit)
    try:
        return read_fd(fd, Path(path), limit), os.fstat(fd)
    finally:
        os.close(fd)


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def open_append(path: Path) -> int:
    """A write fd that appends to ``path`` (made if missing), a regular file and nothing else:
    a FIFO there neither blocks the writer nor swallows its lines."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o666)  # a FIFO with no reader: ENXIO, at once
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(f"{path} is {kind_of(st.st_mode)}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd
