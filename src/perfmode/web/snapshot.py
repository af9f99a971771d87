"""What the page shows, in one JSON object: ``perfmode status`` plus what only the page needs."""

from __future__ import annotations

import logging
from typing import Any

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.governor.gpu import status_lines as gpu_status_lines
from perfmode.status.model import TrainerStatus
from perfmode.status.report import build_status
from perfmode.web.launcher import Launcher, list_configs

log = logging.getLogger(__name__)


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
        # The page's colour for each mode comes from here too: a mode added to the table
        # is drawn in its own colour, not a guessed one.
        "modes": [{"value": m.value, "help": m.spec.help, "colour": m.spec.colour} for m in Mode],
        "status": status,
        "problem": problem,
        "configs": list_configs(home),
        "launches": launcher.report(),
    }
