"""The settings store: the one module that reads and writes ``settings.json``.

Readers never lock: every write is an atomic replace, so a read sees a whole file. A read
never raises and never blocks: whatever is at the path (missing, empty, broken JSON, JSON
nested 100,000 deep, a 5,000-digit number, a FIFO, a symlink to ``/dev/zero``) reads as
``quiet`` with a one-line reason.

Writers read-modify-write under ``settings.json.lock``, keep keys they do not know, and
never drop what a person typed: see ``SettingsStore.update``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from perfmode.base.clock import format_time, from_timestamp, parse_time, utc_now
from perfmode.base.modes import DEFAULT_MODE, Mode, mode_names
from perfmode.base.safereplace import (
    Changed,
    Seen,
    Signature,
    look,
    replace_if_unchanged,
    settled_look,
)
from perfmode.base.smallfile import RefusedFile
from perfmode.errors import PerfmodeError, UsageError

log = logging.getLogger(__name__)

__all__ = [
    "HAND_EDIT",
    "MODE_KEY",
    "Settings",
    "SettingsStore",
    "SettingsWatcher",
    "apply_mode",
    "mode_of",
    "parse_mode",
    "parse_settings",
]

MODE_KEY = "performance_mode"
HAND_EDIT = "hand edit"
LOCK_TIMEOUT_S = 10.0
# How often a writer starts over because the file changed between its read and its replace.
WRITE_ATTEMPTS = 20


def mode_of(value: Any) -> Mode | None:
    """The mode a value names (forgiving about case and spaces), or None."""
    if not isinstance(value, str):
        return None
    try:
        return Mode(value.strip().lower())
    except ValueError:
        return None


def parse_mode(value: str) -> Mode:
    """A mode from user input; a clear error listing the valid ones otherwise."""
    mode = mode_of(value)
    if mode is None:
        raise UsageError(f"unknown mode {short(value)}; valid modes: {', '.join(mode_names())}")
    return mode


def short(value: Any, limit: int = 40) -> str:
    """A value for a message: a hand-typed megabyte must not become a megabyte of log."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return "a huge number"  # repr of a 5,000-digit int raises
    if isinstance(value, list | dict):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Settings:
    """One read of settings.json, already judged."""

    mode: Mode
    changed_by: str | None = None
    changed_at: datetime | None = None
    problem: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    corrupt: bool = False
    """The bytes are not a JSON object: a writer keeps a copy before replacing them."""
    missing: bool = False
    """No settings.json yet: the normal first state of a home, quiet by default, no problem."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def parse_settings(raw: bytes, mtime: datetime | None = None) -> Settings:
    """Judge the bytes of a settings file. Pure: no I/O, never raises."""
    if not raw.strip():
        return Settings(DEFAULT_MODE, problem="settings.json is empty; using quiet")
    try:
        data = json.loads(raw)
    except Exception as e:  # RecursionError, an int of 5,000 digits, bad UTF-8: all damage
        return Settings(
            DEFAULT_MODE,
            problem=f"settings.json is not valid JSON ({_reason(e)}); using quiet",
            corrupt=True,
        )
    if not isinstance(data, dict):
        kind = type(data).__name__
        return Settings(
            DEFAULT_MODE,
            problem=f"settings.json holds a JSON {kind}, not an object; using quiet",
            corrupt=True,
        )
    value = data.get(MODE_KEY)
    changed_by = data.get("changed_by") if isinstance(data.get("changed_by"), str) else None
    changed_by = changed_by[:64] if changed_by else None
    changed_at = parse_time(data.get("changed_at"))
    if value is None:
        return Settings(
            DEFAULT_MODE,
            changed_by,
            changed_at,
            problem=f"settings.json has no {MODE_KEY!r} key; using quiet",
            data=data,
        )
    mode = mode_of(value)
    if mode is None:
        return Settings(
            DEFAULT_MODE,
            changed_by,
            changed_at,
            problem=f"{MODE_KEY} is {short(value)}, valid modes: {', '.join(mode_names())}; using quiet",
            data=data,
        )
    # A writer records the mode it wrote in `changed_to`; a mode that differs from it (or a
    # file with no bookkeeping at all) was typed by hand, and the file's mtime is when.
    if data.get("changed_to") != mode.value:
        changed_by, changed_at = HAND_EDIT, mtime
    return Settings(mode, changed_by, changed_at, data=data)


def _reason(e: Exception) -> str:
    if isinstance(e, RecursionError):
        return "nested too deep"
    if isinstance(e, json.JSONDecodeError | UnicodeDecodeError):
        return str(e)[:120]
    if isinstance(e, ValueError) and "digits" in str(e):
        return "a number with too many digits"
    return type(e).__name__


def apply_mode(
    data: dict[str, Any], mode: Mode, changed_by: str, now: datetime | None = None
) -> None:
    """Write ``mode`` and its bookkeeping into a settings object (inside ``update``)."""
    data[MODE_KEY] = mode.value
    data["changed_at"] = format_time(now or utc_now())
    data["changed_by"] = changed_by
    data["changed_to"] = mode.value


def _record_hand_edit(data: dict[str, Any], current: Settings) -> None:
    # A mode typed by hand carries no bookkeeping: its time is the file's mtime, which any
    # write is about to change. Write it down, or the hand edit would look newer than it is
    # (and, say, hold off a schedule boundary that already passed).
    if current.ok and current.changed_by == HAND_EDIT and current.changed_at is not None:
        data["changed_at"] = format_time(current.changed_at)
        data["changed_by"] = HAND_EDIT
        data["changed_to"] = current.mode.value


def _doubtful(raw: bytes | None) -> bool:
    """Empty or broken: maybe an in-place save caught between its truncate and its write."""
    return raw is not None and (not raw.strip() or parse_settings(raw).corrupt)


class SettingsStore:
    def __init__(self, path: Path, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def signature(self) -> Signature | None:
        """One ``os.stat``: cheap enough for a trainer to call several times a second."""
        try:
            st = os.stat(self.path)
        except (OSError, ValueError):
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> Settings:
        try:
            seen = look(self.path)
        except (OSError, ValueError) as e:
            return Settings(DEFAULT_MODE, problem=f"{self._unreadable(e)}; using quiet")
        return self._judge(seen)

    def _judge(self, seen: Seen) -> Settings:
        if seen.raw is None:
            return Settings(DEFAULT_MODE, missing=True)
        mtime = from_timestamp(seen.sig[1] / 1e9) if seen.sig else None
        return parse_settings(seen.raw, mtime)

    def _unreadable(self, e: Exception) -> str:
        return str(e) if isinstance(e, RefusedFile) else f"cannot read {self.path} ({e})"

    def update(self, change: Callable[[dict[str, Any], Settings], bool | None]) -> Settings:
        """Read-modify-write under the lock.

        ``change(data, current)`` edits ``data`` (the file's object) in place; ``current`` is
        the judged read it came from. Returning ``False`` means "nothing to do": no write.
        ``change`` runs again, on a fresh read, whenever the file changed under the writer.

        Nothing a person typed is dropped (see ``safereplace``): a save racing the write is
        detected and the change redone on top of it; a file that could not be read whole
        (a FIFO, over 1 MiB) is never replaced; a broken one is kept as
        ``settings.json.corrupt-<time>`` before it is.
        """
        self._check_folder()
        try:
            with FileLock(self.lock_path, timeout=self.lock_timeout):
                self._update_locked(change)
        except Timeout:
            raise PerfmodeError(
                f"{self.lock_path} is held by another writer for over {self.lock_timeout:g} s; "
                "nothing was written, try again (if no perfmode command is running, another "
                "program is holding the lock)"
            ) from None
        except RefusedFile as e:
            raise PerfmodeError(
                f"cannot write {self.path}: {e}; nothing was changed. Move it away "
                f"(mv {self.path} {self.path}.bad) and try again"
            ) from None
        except OSError as e:
            raise PerfmodeError(
                f"cannot write {self.path}: {e.strerror or e}; nothing was changed"
            ) from None
        return self.read()

    def _check_folder(self) -> None:
        # filelock retries a lock file it cannot create until its timeout, then blames a
        # lock nobody holds: find out first, and say what is wrong.
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0))
            os.close(fd)
        except OSError as e:
            raise PerfmodeError(
                f"cannot write in {folder} ({e.strerror or e}); nothing was changed. "
                "Use a home folder you can write: --home DIR or PERFMODE_HOME"
            ) from None

    def _update_locked(self, change: Callable[[dict[str, Any], Settings], bool | None]) -> None:
        seen, stable = settled_look(self.path, _doubtful)
        on_disk = seen
        kept: set[bytes] = set()
        for _ in range(WRITE_ATTEMPTS):
            if not stable:  # an in-place save in progress: never write on half of it
                seen, stable = settled_look(self.path, _doubtful)
                on_disk = seen
                continue
            # `seen` is what the change is made on; `on_disk` what must still be at the path
            # when the new file replaces it. They differ only after a racing save (below).
            current = self._judge(seen)
            data = dict(current.data)
            _record_hand_edit(data, current)
            if change(data, current) is False and on_disk == seen:
                return
            new = (json.dumps(data, indent=2) + "\n").encode()
            if seen.raw and seen.raw.strip() and current.corrupt and seen.raw not in kept:
                self._keep_copy(seen.raw, "corrupt")
                kept.add(seen.raw)
            try:
                written, late = replace_if_unchanged(self.path, on_disk, new, _doubtful)
            except Changed:
                seen, stable = settled_look(self.path, _doubtful)
                on_disk = seen
                continue
            if late is None:
                return
            # A save landed in the file being replaced, in the instant after the last look:
            # it is the newest word. Redo the change on top of it.
            log.warning("⚠️  settings.json was saved while perfmode wrote it; keeping that save")
            seen, on_disk = late, written
        kept_late = ""
        if seen != on_disk and seen.raw:
            kept_late = f"; the save it could not merge is in {self._keep_copy(seen.raw, 'lost')}"
        raise PerfmodeError(
            f"{self.path} kept changing while perfmode tried to write it (another program "
            f"rewrites it); the mode was not set, try again{kept_late}"
        )

    def set_mode(
        self, mode: Mode | str, changed_by: str, *, now: datetime | None = None
    ) -> Settings:
        mode = parse_mode(mode)
        return self.update(lambda data, _: apply_mode(data, mode, changed_by, now))

    def _keep_copy(self, raw: bytes, why: str) -> Path:
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
        backup = self.path.with_name(f"{self.path.name}.{why}-{stamp}")
        with contextlib.suppress(FileExistsError), open(backup, "xb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        what = "could not be read" if why == "corrupt" else "was saved while perfmode wrote it"
        log.warning("⚠️  settings.json %s; kept a copy at %s", what, backup)
        return backup


class SettingsWatcher:
    """What a long-running process polls: a stat per call, a re-read only on change.

    A problem is logged once when it appears, not on every poll.
    """

    def __init__(self, store: SettingsStore, logger: logging.Logger = log) -> None:
        self.store = store
        self.log = logger
        self._signature: Signature | None = None
        self._problem: str | None = None
        self.current = self._load(self.store.signature())

    def poll(self) -> Settings | None:
        """The new settings when the file changed since the last call, else None."""
        sig = self.store.signature()
        if sig == self._signature:
            return None
        self.current = self._load(sig)
        return self.current

    def _load(self, sig: Signature | None) -> Settings:
        settings = self.store.read()
        # Take the signature *before* reading: a write racing with the read then shows
        # up as a change on the next poll instead of being missed.
        self._signature = sig
        if settings.problem and settings.problem != self._problem:
            self.log.warning("⚠️  %s", settings.problem)
        self._problem = settings.problem
        return settings
