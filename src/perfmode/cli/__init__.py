"""The ``perfmode`` command line: a thin Typer layer over the library.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation, sweep, bench, web.
"""

from perfmode.cli import (  # noqa: F401  (registers commands)
    bench,
    config,
    data,
    evaluate,
    hold,
    mode,
    schedule,
    sweep,
    train,
    ui,
)
from perfmode.cli.app import app


def main() -> None:
    # The same name in usage lines and completion scripts for `python -m perfmode`.
    app(prog_name="perfmode")


__all__ = ["app", "main"]
