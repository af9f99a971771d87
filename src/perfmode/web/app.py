"""The ASGI app: the page, its static files, the event stream and the three controls.

| route | what |
| --- | --- |
| ``GET /`` | the page |
| ``GET /static/<name>`` | a file shipped in the package (a fixed list read at start-up) |
| ``GET /api/state`` | the state the page shows, as JSON (for scripts) |
| ``GET /api/events`` | Server-Sent Events: ``state`` and ``metrics`` as they change |
| ``POST /api/mode`` | ``{"mode": M}``: save the mode (``changed_by: "ui"``) |
| ``POST /api/runs/start`` | ``{"run": R, "config": C}``: start ``perfmode train`` |
| ``POST /api/runs/stop`` | ``{"run": R}``: SIGTERM the run's trainer (it saves) |
| ``GET /api/sweeps`` | the home's sweeps: trials, states, values, best so far |
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from perfmode.base.clock import format_time
from perfmode.base.home import Home
from perfmode.errors import PerfmodeError
from perfmode.settings.store import SettingsStore, parse_mode
from perfmode.web.hub import Hub
from perfmode.web.launcher import Launcher
from perfmode.web.security import TOKEN_COOKIE, Guard
from perfmode.web.sweeps import sweeps_route

PING_S = 15.0
MAX_BODY = 4096
# The page loads nothing from elsewhere and cannot be framed.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class StaticFiles:
    """The package's static files, read once into memory: no request can name a path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        root = resources.files("perfmode.web") / "static"
        self._walk(root, "")

    def _walk(self, folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                self._walk(entry, name + "/")
            elif entry.is_file():
                body = entry.read_bytes()
                ctype = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if ctype.startswith("text/") or ctype.endswith("javascript"):
                    ctype += "; charset=utf-8"
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                self.files[name] = (body, ctype, etag)

    def response(self, name: str, request: Request) -> Response:
        found = self.files.get(name)
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        body, ctype, etag = found
        headers = {"etag": etag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=ctype, headers=headers)


class GuardMiddleware:
    """Every request passes the guard first; refusals are JSON with one line to read."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        refusal = self.guard.check(scope["method"], scope["path"], headers, query)
        if refusal is not None:
            response = JSONResponse({"error": refusal.message}, status_code=refusal.status)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(home: Home, guard: Guard | None = None) -> Starlette:
    guard = guard or Guard()
    launcher = Launcher(home)
    hub = Hub(home, launcher)
    static = StaticFiles()
    store = SettingsStore(home.settings)

    async def index(request: Request) -> Response:
        response = static.response("index.html", request)
        if guard.token_in_query(request.url.query):
            # Keep the token in a cookie only this origin gets back, and out of the address
            # bar (and so out of history and screenshots).
            response = Response(status_code=303, headers={"location": "/"})
            response.set_cookie(TOKEN_COOKIE, guard.token or "", httponly=True, samesite="strict")
        return response

    async def static_file(request: Request) -> Response:
        return static.response(request.path_params["name"], request)

    async def state(request: Request) -> Response:
        await run_in_threadpool(hub.tick, True)
        return JSONResponse(hub.state, headers={"cache-control": "no-store"})

    async def events(request: Request) -> Response:
        await run_in_threadpool(hub.tick, True)
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), PING_S)
                    except TimeoutError:
                        yield ": ping\n\n"
                        continue
                    if message is None:
                        return
                    yield message
            finally:
                hub.unsubscribe(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def set_mode(request: Request) -> Response:
        body = await _json_body(request)
        mode = parse_mode(str(body.get("mode", "")))
        settings = await run_in_threadpool(store.set_mode, mode, "ui")
        await run_in_threadpool(hub.tick, True)
        return JSONResponse(
            {
                "mode": settings.mode.value,
                "changed_by": settings.changed_by,
                "changed_at": format_time(settings.changed_at) if settings.changed_at else None,
            }
        )

    async def start_run(request: Request) -> Response:
        body = await _json_body(request)
        # Files and a fork: off the event loop, which serves every other page meanwhile.
        launch = await run_in_threadpool(
            launcher.start, str(body.get("run", "")), str(body.get("config", ""))
        )
        await run_in_threadpool(hub.tick, True)
        return JSONResponse(launch.report())

    async def stop_run(request: Request) -> Response:
        body = await _json_body(request)
        pid = await run_in_threadpool(launcher.stop, str(body.get("run", "")))
        return JSONResponse({"run": body.get("run"), "pid": pid, "signal": "SIGTERM"})

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PerfmodeError)
        status = 400 if exc.exit_code == 2 else 409
        return JSONResponse({"error": str(exc)}, status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            hub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name:path}", static_file),
            Route("/api/state", state),
            Route("/api/events", events),
            Route("/api/mode", set_mode, methods=["POST"]),
            Route("/api/runs/start", start_run, methods=["POST"]),
            Route("/api/runs/stop", stop_run, methods=["POST"]),
            sweeps_route(home),
        ],
        exception_handlers={PerfmodeError: on_error},
        lifespan=lifespan,
    )
    app.add_middleware(GuardMiddleware, guard=guard)
    app.state.hub = hub
    return app


async def _json_body(request: Request) -> dict[str, Any]:
    # Counted while it arrives: a 400 MB body is refused at its first 4 KiB, not read whole.
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise PerfmodeError(f"request body too large (over {MAX_BODY} bytes)", exit_code=2)
    try:
        body = json.loads(bytes(raw) or b"{}")
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested 4,000 deep
        raise PerfmodeError("request body is not JSON (or nested too deep)", exit_code=2) from None
    if not isinstance(body, dict):
        raise PerfmodeError("request body must be a JSON object", exit_code=2)
    return body
