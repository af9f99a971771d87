"""``GET /api/sweeps``: the home's sweeps (their journals in HOME/sweeps/) for the page.

A study in a database is not listed: the page knows no URL, and must not hold a password;
optuna-dashboard opens those (README, "Sweeps").
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from perfmode.base.home import Home
from perfmode.errors import PerfmodeError

log = logging.getLogger("perfmode.ui")

MAX_SWEEPS = 20
MAX_TRIALS = 500


def sweeps_state(home: Home) -> dict[str, Any]:
    folder = home.root / "sweeps"
    try:
        journals = sorted(folder.glob("*.journal"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        journals = []
    out = []
    for path in journals[:MAX_SWEEPS]:
        name = path.stem
        try:
            out.append(_one(home, name))
        except PerfmodeError as e:
            out.append({"sweep": name, "problem": str(e)})
        except Exception as e:  # a damaged journal is shown, it never takes the page down
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
