"""Replacing a file that people edit by hand without losing what they typed.

A lock keeps perfmode's own writers apart, but an editor takes no lock. Three races remain,
and each has its answer here:

- an editor that saves in place truncates, then writes: a reader between the two sees an
  empty or half file. A read that looks like that is trusted only once the file stands
  still (``settled``);
- a save between a writer's read and its replace would be overwritten: right before the
  replace, the writer looks again and starts over if the file changed (``Changed``);
- a save in the instant between that last look and the replace goes into the file being
  replaced: the writer keeps that file open and reads it after the replace, and hands
  back what landed there (``replace_if_unchanged``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.smallfile import RefusedFile, close_quietly, open_regular, read_fd, read_small

# How long a doubtful read must stand still to be believed, and how often to look again.
SETTLE_S = 0.05
SETTLE_TRIES = 6

# (st_ino, st_mtime_ns, st_size): an editor that saves in place changes mtime and size, one
# that replaces the file changes the inode; the same bytes saved again are a new save.
Signature = tuple[int, int, int]


@dataclass(frozen=True)
class Seen:
    """The bytes at a path (None: no file) and the signature of the file that held them."""

    raw: bytes | None
    sig: Signature | None


class Changed(Exception):
    """The file is no longer what the writer read: nothing was replaced; start over."""


def _sig(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def look(path: Path) -> Seen:
    """Read ``path`` (bounded, regular files only; see ``smallfile``)."""
    try:
        raw, st = read_small(path)
    except FileNotFoundError:
        return Seen(None, None)
    return Seen(raw, _sig(st))


def _look_fd(fd: int, path: Path) -> Seen:
    return Seen(read_fd(fd, path), _sig(os.fstat(fd)))


def settled(
    first: Seen, doubtful: Callable[[bytes | None], bool], again: Callable[[], Seen]
) -> tuple[Seen, bool]:
    """``first``, or a later read, and whether it can be believed: a doubtful read is, once
    a second read ``SETTLE_S`` later finds the file untouched (same bytes, inode, mtime and
    size); one that is still changing after ``SETTLE_TRIES`` looks is not."""
    seen = first
    for _ in range(SETTLE_TRIES):
        if not doubtful(seen.raw):
            return seen, True
        time.sleep(SETTLE_S)
        later = again()
        if later == seen:
            return seen, True
        seen = later
    return seen, not doubtful(seen.raw)


def settled_look(path: Path, doubtful: Callable[[bytes | None], bool]) -> tuple[Seen, bool]:
    return settled(look(path), doubtful, lambda: look(path))


def replace_if_unchanged(
    path: Path, expected: Seen, new: bytes, doubtful: Callable[[bytes | None], bool]
) -> tuple[Seen, Seen | None]:
    """Atomically replace ``path`` with ``new`` if it still is exactly ``expected``.

    Returns what is at the path now (``new`` and its signature) and, when someone saved
    into the replaced file after the last look, what they saved (settled); else None.
    Raises ``Changed`` (nothing written) when the file changed since ``expected``.
    """
    held: list[int] = []

    def last_look() -> None:
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            if expected.raw is None:
                return
            raise Changed from None
        except RefusedFile:
            raise Changed from None
        held.append(fd)
        if _look_fd(fd, path) != expected:
            raise Changed

    try:
        atomic_write_bytes(path, new, before_replace=last_look)
        after = look(path)
        written = after if after.raw == new else Seen(new, None)
        if not held:
            return written, None
        fd = held[0]
        if doubtful(expected.raw):
            # What was replaced may be an in-place save paused between its truncate and
            # its write: give the write the time a settled read allows, then look.
            time.sleep(SETTLE_S)
        late = _look_fd(fd, path)
        if late == expected:
            return written, None
        late, _ = settled(late, doubtful, lambda: _look_fd(fd, path))
        return written, (late if late.raw != expected.raw else None)
    except RefusedFile:
        raise Changed from None
    finally:
        for fd in held:
            close_quietly(fd)
