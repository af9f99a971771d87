"""Which system this is, by the names the rest of the package uses."""

from __future__ import annotations

import sys


def system_of(platform_name: str) -> str:
    """``linux``, ``macos``, ``windows``, or ``posix`` for another Unix (``sys.platform``)."""
    if platform_name == "win32":
        return "windows"  # Cygwin's Python is a POSIX one: "posix"
    if platform_name == "darwin":
        return "macos"
    if platform_name.startswith("linux"):
        return "linux"
    return "posix"


SYSTEM = system_of(sys.platform)
