"""``GET /api/sweeps``: the home's sweeps for the page.

A journal in HOME/sweeps/ is read as it is now. A study elsewhere (a database, a journal
outside the home) the page does not open: it would need its URL and password. It shows
the snapshot the home's sweep process writes beside the journals
(:mod:`perfmode.sweep.snapshot`), with the time it was written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from perfmode.base.home import Home
from perfmode.errors import PerfmodeError
from perfmode.sweep.snapshot import MAX_TRIALS, SUFFIX, read_snapshot

log = logging.getLogger("perfmode.ui")

MAX_SWEEPS = 20


def _listed(folder: Path) -> list[Path]:
    """The journals, and the snapshots of sweeps that have no journal here; newest first."""
    try:
        journals = {p.stem: p for p in folder.glob("*.journal")}
        snapshots = {
            p.name.removesuffix(SUFFIX): p
            for p in folder.glob(f"*{SUFFIX}")
            if p.name.removesuffix(SUFFIX) not in journals
        }
        return sorted(
            [*journals.values(), *snapshots.values()],
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        return []


def sweeps_state(home: Home) -> dict[str, Any]:
    out = []
    for path in _listed(home.root / "sweeps")[:MAX_SWEEPS]:
        snapshot = path.name.endswith(SUFFIX)
        name = path.name.removesuffix(SUFFIX) if snapshot else path.stem
        try:
            out.append(read_snapshot(path) if snapshot else _one(home, name))
        except PerfmodeError as e:
            out.append({"sweep": name, "problem": str(e)})
        except Exception as e:  # a damaged file is shown, it never takes the page down
            out.append({"sweep": name, "problem": f"cannot read {path.name}: {type(e).__name__}"})
    return {"sweeps": out}


def _one(home: Home, name: str) -> dict[str, Any]:
    from perfmode.sweep.show import load_study, summary
    from perfmode.sweep.storage import where

    w = where(home, name, None)
    s = summary(load_study(w, name), w)
    s["trials"] = s["trials"][-MAX_TRIALS:]
    return s


def sweeps_route(home: Home) -> Route:
    async def sweeps(request: Request) -> Response:
        state = await run_in_threadpool(sweeps_state, home)
        return JSONResponse(state, headers={"cache-control": "no-store"})

    return Route("/api/sweeps", sweeps)
