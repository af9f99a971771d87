"""The ``perfmode`` command line: a thin Typer layer over the library.

One module per command or group (``train``, ``mode`` for set and status, ``hold``,
``schedule``, ``config``, ``data``, ``evaluate``, ``bench``, ``sweep``, ``ui``); ``app``
holds the shared options and is the one place a ``PerfmodeError`` becomes an exit code;
``usage_errors`` makes Typer's own usage errors one line.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation, sweep, bench, web.
"""

import sys

from perfmode.base.platform import fit_console, streams_without_console
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
from perfmode.cli.app import app, tolerant_console


def main() -> None:
    streams_without_console()
    tolerant_console()
    # A console that cannot print the symbols in perfmode's lines gets ASCII instead.
    fit_console(sys.stdout)
    fit_console(sys.stderr)
    # The same name in usage lines and completion scripts for `python -m perfmode`.
    app(prog_name="perfmode")


__all__ = ["app", "main"]
