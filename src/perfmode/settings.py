"""The settings store: the one module that reads and writes ``settings.json``.

Readers never lock: every write is an atomic replace, so a read sees a whole file.
Writers read-modify-write under ``settings.json.lock`` and keep keys they do not know.
A file that is missing, empty, unparsable or holds a bad value reads as ``quiet`` with a
one-line reason; it never raises to the caller.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from perfmode.errors import PerfmodeError, UsageError
from perfmode.fsutil import atomic_write_json

log = logging.getLogger(__name__)

MODE_KEY = "performance_mode"
HAND_EDIT = "hand edit"
LOCK_TIMEOUT_S = 10.0


class Mode(StrEnum):
    QUIET = "quiet"
    PERFORMANCE = "performance"
    AUTO = "auto"
    """Performance while nobody uses the computer, quiet while someone does."""
    PAUSED = "paused"
    """No training at all: the trainer sleeps at its next safe point, everything in memory."""


DEFAULT_MODE = Mode.QUIET
MODES = tuple(m.value for m in Mode)


def parse_mode(value: str) -> Mode:
    """A mode from user input; a clear error listing the valid ones otherwise."""
    try:
        return Mode(str(value).strip().lower())
    except ValueError:
        raise UsageError(f"unknown mode {value!r}; valid modes: {', '.join(MODES)}") from None


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_span(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.5 h``, ``2.0 days``: for people, not for parsing."""
    s = abs(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


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


# (st_ino, st_mtime_ns, st_size): an editor that rewrites in place still changes mtime/size,
# one that replaces the file changes the inode.
Signature = tuple[int, int, int]


def parse_settings(raw: bytes, mtime: datetime | None = None) -> Settings:
    """Judge the bytes of a settings file. Pure: no I/O, never raises."""
    if not raw.strip():
        return Settings(DEFAULT_MODE, problem="settings.json is empty; using quiet")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return Settings(
            DEFAULT_MODE,
            problem=f"settings.json is not valid JSON ({e}); using quiet",
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
    changed_at = parse_time(data.get("changed_at"))
    if value is None:
        return Settings(
            DEFAULT_MODE,
            changed_by,
            changed_at,
            problem=f"settings.json has no {MODE_KEY!r} key; using quiet",
            data=data,
        )
    try:
        mode = Mode(str(value).strip().lower())
    except ValueError:
        return Settings(
            DEFAULT_MODE,
            changed_by,
            changed_at,
            problem=f"{MODE_KEY} is {value!r}, valid modes: {', '.join(MODES)}; using quiet",
            data=data,
        )
    # A writer records the mode it wrote in `changed_to`; a mode that differs from it (or a
    # file with no bookkeeping at all) was typed by hand, and the file's mtime is when.
    if data.get("changed_to") != mode.value:
        changed_by, changed_at = HAND_EDIT, mtime
    return Settings(mode, changed_by, changed_at, data=data)


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


class SettingsStore:
    def __init__(self, path: Path, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def signature(self) -> Signature | None:
        """One ``os.stat``: cheap enough for a trainer to call several times a second."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> Settings:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
                mtime = datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime, UTC)
        except FileNotFoundError:
            return Settings(DEFAULT_MODE, missing=True)
        except OSError as e:
            return Settings(DEFAULT_MODE, problem=f"cannot read {self.path} ({e}); using quiet")
        return parse_settings(raw, mtime)

    def update(self, change: Callable[[dict[str, Any], Settings], bool | None]) -> Settings:
        """Read-modify-write under the lock.

        ``change(data, current)`` edits ``data`` (the file's object) in place; ``current`` is
        the judged read it came from. Returning ``False`` means "nothing to do": no write.
        A file that cannot be parsed is copied aside first, so nothing the user typed is lost.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(self.lock_path, timeout=self.lock_timeout):
                current = self.read()
                data = dict(current.data)
                _record_hand_edit(data, current)
                if change(data, current) is False:
                    return current
                if current.corrupt:
                    self._keep_corrupt_copy()
                atomic_write_json(self.path, data)
        except Timeout:
            raise PerfmodeError(
                f"{self.lock_path} is held by another writer for over {self.lock_timeout:g} s; "
                "nothing was written, try again (if no perfmode command is running, another "
                "program is holding the lock)"
            ) from None
        except OSError as e:
            raise PerfmodeError(f"cannot write {self.path}: {e}; nothing was changed") from None
        return self.read()

    def set_mode(
        self, mode: Mode | str, changed_by: str, *, now: datetime | None = None
    ) -> Settings:
        mode = parse_mode(mode)
        return self.update(lambda data, _: apply_mode(data, mode, changed_by, now))

    def _keep_corrupt_copy(self) -> Path:
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
        backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        shutil.copy2(self.path, backup)
        log.warning("settings.json could not be read; kept a copy at %s", backup)
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
