"""The ``perfmode`` command line: a thin Typer layer over the library."""

from perfmode.cli import (  # noqa: F401  (registers commands)
    bench,
    config,
    data,
    evaluate,
    mode,
    schedule,
    train,
    ui,
)
from perfmode.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
