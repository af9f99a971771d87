"""``perfmode hold``: keep a mode while a command runs or for a while; list and release holds."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Annotated, Any

import typer

from perfmode.base.clock import utc_now
from perfmode.base.modes import hold_modes
from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.cli.mode import hold_line
from perfmode.errors import PerfmodeError, UsageError
from perfmode.settings.holds import (
    active_holds,
    add_hold,
    clean_holds,
    parse_duration,
    release_hold,
)
from perfmode.settings.store import SettingsStore

FORWARDED = (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
EXAMPLES = "e.g. `perfmode hold quiet -- zoom` or `perfmode hold performance --for 2h`"


@app.command("hold")
def hold(
    mode: Annotated[
        str | None,
        typer.Argument(
            help=f"The mode to hold: {', '.join(m.value for m in hold_modes())}.",
            show_default=False,
        ),
    ] = None,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After `--`: the command to run; the hold ends when it exits, however it "
            "exits. perfmode passes it SIGINT/SIGTERM/SIGHUP and exits with its status.",
            show_default=False,
        ),
    ] = None,
    for_: Annotated[
        str | None,
        typer.Option("--for", metavar="DURATION", help="Hold for a while: 2h, 90m, 1h30m."),
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why (shown in status and the trainer's log).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the active holds.")] = False,
    release: Annotated[
        str | None, typer.Option("--release", metavar="ID", help="Release a hold now.")
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Hold a mode while a command runs or for a while; it outranks `set` and the schedule.

    Of several holds the least demanding wins (paused, then quiet, then performance).
    A hold whose command or time has ended is ignored at once, even after kill -9.
    `perfmode set` releases every hold.
    """
    setup_logging()
    store = SettingsStore(home_of(home).settings)
    if list_ or release:
        if mode or command or for_:
            raise UsageError("--list and --release take no mode, command or --for")
        if release:
            _release(store, release, json_out)
        else:
            _list(store, json_out)
        return
    if mode is None:
        raise UsageError(f"give a mode to hold, {EXAMPLES}; `--list` shows the holds")
    if bool(command) == bool(for_):
        raise UsageError(f"give either a command after `--` or --for DURATION, {EXAMPLES}")
    if for_:
        until = utc_now() + parse_duration(for_)
        h = add_hold(store, mode, reason=reason or f"for {for_.strip()}", until=until)
        if json_out:
            print_json(h.to_json())
        else:
            typer.echo(
                f"Holding {hold_line(h.to_json())}; `perfmode hold --release {h.id}` ends it"
            )
        return
    assert command
    raise typer.Exit(_run_holding(store, mode, command, reason))


def _run_holding(store: SettingsStore, mode: str, command: list[str], reason: str | None) -> int:
    h = add_hold(store, mode, reason=reason or os.path.basename(command[0]), pid=os.getpid())
    typer.echo(f"Holding {h.mode.value} while {command[0]} runs (hold {h.id})", err=True)
    try:
        try:
            child = subprocess.Popen(command)
        except FileNotFoundError:
            raise PerfmodeError(f"command not found: {command[0]}", exit_code=127) from None
        except PermissionError:
            raise PerfmodeError(
                f"cannot run {command[0]}: permission denied", exit_code=126
            ) from None

        def forward(signum: int, _: Any) -> None:
            child.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in FORWARDED if s is not None}
        try:
            code = child.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        release_hold(store, h.id)
        typer.echo(f"Released hold {h.id}", err=True)
    # A command killed by a signal exits the way a shell reports it: 128 + the signal.
    return code if code >= 0 else 128 - code


def _release(store: SettingsStore, hold_id: str, json_out: bool) -> None:
    h = release_hold(store, hold_id.strip())
    if h is None:
        raise UsageError(f"no active hold {hold_id!r}; `perfmode hold --list` shows them")
    if json_out:
        print_json(h.to_json())
    else:
        typer.echo(f"Released {h.describe()} ({h.mode.value})")


def _list(store: SettingsStore, json_out: bool) -> None:
    clean_holds(store)
    holds = [h.to_json() for h in active_holds(store.read().data)]
    if json_out:
        print_json(holds)
    elif not holds:
        typer.echo("No active holds")
    else:
        for h in holds:
            typer.echo(hold_line(h))
