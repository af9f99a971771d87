"""The Chromium the page's tests and ``benchmarks/bench_ui.py`` drive, and how it is launched.

No pytest here: the benchmark imports it too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``PERFMODE_CHROMIUM``, else Debian's ``chromium`` (or ``chromium-browser``) on PATH."""
    path = os.environ.get("PERFMODE_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    return path if path and Path(path).exists() else None
