"""``perfmode ui``: bind, say where the page is, serve until Ctrl-C."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import webbrowser
from typing import Any

from perfmode.base.home import Home
from perfmode.base.platform import reuse_address_is_safe
from perfmode.errors import PerfmodeError
from perfmode.web.security import TOKEN_ENV, Guard, check_bind_host, is_loopback, new_token

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3200


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line that says why not (a port in use: exit 1)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PerfmodeError(f"cannot resolve --host {host}: {e.strerror}", exit_code=2) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if reuse_address_is_safe():
            # Lets a restarted server take the port while old connections linger; on POSIX it
            # does not let two servers share it (on Windows it would).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PerfmodeError(
                f"port {port} on {host} is in use (is another perfmode ui running?); "
                "stop that program or pick another port with --port"
            ) from None
        raise PerfmodeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(False)
    return sock


def page_url(sock: socket.socket, token: str | None) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()  # all interfaces: a name other machines can use
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    home: Home,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    expose: bool = False,
    open_browser: bool = False,
) -> None:
    check_bind_host(host, expose)
    token = None if is_loopback(host) else (os.environ.get(TOKEN_ENV) or new_token())
    sock = bind(host, port)

    # The web stack is imported here, by this command alone.
    import uvicorn

    from perfmode.web.app import create_app

    app = create_app(home, Guard(token))
    url = page_url(sock, token)
    log.info("🌐 perfmode ui for %s: %s", home.root, url)
    if token:
        log.warning(
            "⚠️  listening on %s: anyone who can reach it and has the token controls training "
            "on this machine",
            host,
        )
    log.info("   Ctrl-C stops the page; trainers started from it keep running")
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    hub = app.state.hub

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Open pages hold a stream each; end them now, or shutdown waits on them and
            # then cancels them with a traceback.
            hub.close_soon()
            # Ctrl-C or SIGTERM is the way to stop the page: exit 0, as `perfmode schedule`
            # does (uvicorn would re-raise the signal after shutting down). A second Ctrl-C
            # skips the graceful part.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    Server(config).run(sockets=[sock])
