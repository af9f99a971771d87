"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfmode.base.platform import fsync_dir, replace_file, set_file_mode

__all__ = ["atomic_write_bytes", "atomic_write_json", "fsync_dir"]


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(
    path: Path, data: bytes, *, before_replace: Callable[[], None] | None = None
) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and ``os.replace``.

    The file keeps its permissions (a new one gets the umask's); the temp file never
    outlives this call, whatever goes wrong. ``before_replace`` runs in the last instant
    before the replace (after the slow fsync); raising there leaves ``path`` untouched.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _default_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            set_file_mode(f.fileno(), mode)
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())
