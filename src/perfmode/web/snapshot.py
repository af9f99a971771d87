"""What the page shows, in one JSON object: ``perfmode status`` plus what only the page needs."""

from __future__ import annotations

import logging
from typing import Any

from perfmode.base.home import Home
from perfmode.governor.gpu import status_lines as gpu_status_lines
from perfmode.settings.store import Mode, format_time, utc_now
from perfmode.status.model import TrainerStatus
from perfmode.status.report import build_status
from perfmode.web.launcher import Launcher, list_configs

log = logging.getLogger(__name__)

# A line under each choice. A mode added to settings.Mode shows up on the page by itself,
# with no line until one is written here.
MODE_HELP = {
    "quiet": "Out of your way while you work: by default one thread, half a core.",
    "performance": "Flat out while you are away: the CPU other programs leave free.",
    "auto": "Performance while the machine is idle, quiet while you use it.",
    "paused": "No CPU at all; everything stays in memory and any other mode resumes at once.",
}


def build_snapshot(home: Home, launcher: Launcher) -> dict[str, Any]:
    """Never raises: whatever goes wrong reading the home becomes ``problem``, in words."""
    status: dict[str, Any] | None = None
    problem = None
    try:
        status = build_status(home)
    except Exception as e:  # the page must say it, not go blank: nothing in a file may crash it
        log.debug("status of %s failed", home.root, exc_info=True)
        problem = f"cannot read the home {home.root}: {e}"
    for run in status["runs"] if status else []:
        # The same words as `perfmode status` for a GPU (none on a machine without one).
        lines = gpu_status_lines(TrainerStatus.from_json(run))
        run["gpu_lines"] = [f"{label}: {text}" for label, text in lines]
    if not home.root.is_dir():
        problem = (
            f"{home.root} does not exist yet; it is created when you save a mode or start a run"
        )
    return {
        "home": str(home.root),
        "server_time": format_time(utc_now()),
        "modes": [{"value": m.value, "help": MODE_HELP.get(m.value)} for m in Mode],
        "status": status,
        "problem": problem,
        "configs": list_configs(home),
        "launches": launcher.report(),
    }
