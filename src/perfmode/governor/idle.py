"""Input idle time: seconds since the last keyboard or mouse input, where the platform tells.

Sources, first that works wins:

- Linux, X11: the MIT-SCREEN-SAVER extension (what xprintidle and screen lockers read),
  spoken directly over the X protocol by python-xlib: no system library needed;
- Linux, logind: a graphical session's ``IdleHint`` via ``loginctl`` (Wayland desktops set
  it after their own idle delay); a text session (ssh) is never used, its hint says nothing
  about the person at the screen;
- Windows: ``GetLastInputInfo``; macOS: ``HIDIdleTime`` from ``ioreg``.

Which of them are tried on this system is ``perfmode.base.platform.idle_source_names``.

Where none works (a headless server), :attr:`IdleSensor.unknown` says why, and auto decides on
other programs' CPU use alone. Nothing here raises: a source that fails is dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from perfmode.base.platform import idle_source_names

IdleSource = Callable[[], float | None]

RESEARCH_S = 60.0
UNKNOWN = "input idle unknown here; deciding on CPU use alone"


def _x11_source() -> IdleSource | None:
    if not os.environ.get("DISPLAY"):
        return None
    try:
        from Xlib import display  # type: ignore[import-untyped]
        from Xlib.ext import screensaver  # type: ignore[import-untyped]  # noqa: F401
    except Exception:
        return None
    try:
        d = display.Display()
        if not d.has_extension("MIT-SCREEN-SAVER"):
            d.close()
            return None
        root = d.screen().root

        def idle() -> float | None:
            return root.screensaver_query_info().idle / 1000.0

        idle()
        return idle
    except Exception:
        return None


_LOGIND_GRAPHICAL = {"x11", "wayland", "mir"}
LOGIND_PROPERTIES = ("-p", "Type", "-p", "IdleHint", "-p", "IdleSinceHint")


def _logind_source() -> IdleSource | None:
    session = os.environ.get("XDG_SESSION_ID")
    loginctl = shutil.which("loginctl")
    if not session or not loginctl:
        return None

    def read() -> dict[str, str]:
        out = subprocess.run(
            [loginctl, "show-session", session, *LOGIND_PROPERTIES],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    try:
        if read().get("Type") not in _LOGIND_GRAPHICAL:
            return None
    except Exception:
        return None

    def idle() -> float | None:
        p = read()
        if p.get("IdleHint") != "yes":
            return 0.0  # the desktop has not declared the session idle: someone is there
        since = int(p.get("IdleSinceHint") or 0) / 1e6
        return max(0.0, time.time() - since) if since > 0 else None

    return idle


def _windows_source() -> IdleSource | None:
    import ctypes
    from ctypes import wintypes

    class LASTINPUTINFO(ctypes.Structure):
        _fields_ = [("cbSize", wintypes.UINT), ("dwTime", wintypes.DWORD)]

    user32, kernel32 = ctypes.windll.user32, ctypes.windll.kernel32  # type: ignore[attr-defined]

    def idle() -> float | None:
        info = LASTINPUTINFO(ctypes.sizeof(LASTINPUTINFO), 0)
        if not user32.GetLastInputInfo(ctypes.byref(info)):
            return None
        # Both are milliseconds since boot in 32 bits: the difference wraps every 49.7 days.
        return ((kernel32.GetTickCount() - info.dwTime) & 0xFFFFFFFF) / 1000.0

    return idle


def _macos_source() -> IdleSource | None:
    ioreg = shutil.which("ioreg")
    if ioreg is None:
        return None
    pattern = re.compile(r'"HIDIdleTime"\s*=\s*(\d+)')

    def idle() -> float | None:
        out = subprocess.run(
            [ioreg, "-c", "IOHIDSystem", "-d", "4"], capture_output=True, text=True, timeout=5
        ).stdout
        m = pattern.search(out)
        return int(m.group(1)) / 1e9 if m else None

    return idle


SOURCES: dict[str, Callable[[], IdleSource | None]] = {
    "x11": _x11_source,
    "logind": _logind_source,
    "windows": _windows_source,
    "macos": _macos_source,
}


class IdleSensor:
    """Input idle seconds, read at most every ``interval`` seconds; None where unknown."""

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self.source_name: str | None = None
        self._source: IdleSource | None = None
        self._searched = False
        self._search_again = 0.0
        self._next = 0.0
        self.reading: float | None = None

    @property
    def unknown(self) -> str | None:
        """Why input idle cannot be read here, or None when it can."""
        return UNKNOWN if self._searched and self._source is None else None

    def _find(self) -> None:
        self._searched = True
        for name in idle_source_names():
            make = SOURCES[name]
            try:
                source = make()
            except Exception:
                source = None
            if source is not None:
                self.source_name, self._source = name, source
                return

    def poll(self) -> float | None:
        now = self._clock()
        if now < self._next:
            return self.reading
        self._next = now + self.interval
        if not self._searched or (self._source is None and now >= self._search_again):
            # A desktop may come after the trainer (a login): look again now and then.
            self._search_again = now + RESEARCH_S
            self._find()
        if self._source is None:
            return None
        try:
            value = self._source()
        except Exception:
            # The display went away (a logout) or the tool broke: look again next time.
            self._source, self.source_name, self._searched = None, None, False
            value = None
        self.reading = value
        return value
