"""``perfmode ui``."""

from __future__ import annotations

from typing import Annotated

import typer

from perfmode.cli.app import HomeOpt, app, home_of, setup_logging

# Stdlib only: the web stack itself is imported inside the command.
from perfmode.web.security import EXPOSE_FLAG


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to serve on.")] = 3200,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; anything but loopback needs " + EXPOSE_FLAG + ".",
        ),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    expose: Annotated[
        bool,
        typer.Option(
            EXPOSE_FLAG,
            help="Allow a --host other machines can reach. Whoever reaches it can start and "
            "stop programs here, so every request then needs the printed token.",
        ),
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Serve a live page of this home: mode, runs, charts, schedule; steer them from it.

    Listens on http://127.0.0.1:3200 until Ctrl-C; trainers started from the page keep running.
    """
    # The web stack is imported by this command only, so `set` and `status` stay fast.
    from perfmode.web.server import serve

    setup_logging()
    serve(home_of(home), host, port, expose=expose, open_browser=open_browser)
