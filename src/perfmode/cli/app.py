"""The Typer app, the options every command shares, and the one place errors become exit codes.

Commands live in sibling modules and stay thin: parse, call the library, print.
Nothing here imports torch; commands that need it import the library inside the function.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from perfmode.errors import PerfmodeError
from perfmode.home import HOME_ENV, Home, resolve_home


class _PerfmodeGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PerfmodeError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    cls=_PerfmodeGroup,
    name="perfmode",
    help="Train PPO trading agents for days; steer their resource use live with a mode "
    "(quiet or performance).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=HOME_ENV,
        help="Folder holding settings.json, runs and logs (default: the current directory).",
        show_default=False,
        file_okay=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def home_of(home: Path | None) -> Home:
    return resolve_home(home)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def setup_logging(level: int = logging.INFO, log_file: Path | None = None) -> None:
    """Library log lines go to stderr as plain messages (and to ``log_file`` with times)."""
    root = logging.getLogger("perfmode")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file is not None:
        # delay: the file (and its run folder, made by the trainer) only once there is a
        # line to write, so a command that fails on bad input leaves nothing behind.
        fh = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(fh)
    root.propagate = False
