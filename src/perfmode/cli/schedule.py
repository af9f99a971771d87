"""``perfmode schedule``: store a timetable, then follow it in the foreground."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from perfmode.base.clock import human_span, parse_time
from perfmode.base.home import Home
from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.errors import UsageError
from perfmode.schedule.daemon import (
    DaemonLock,
    run_daemon,
    schedule_report,
    stop_on_signals,
    tick_seconds,
)
from perfmode.schedule.store import clear_timetable, store_timetable, timetable_of
from perfmode.schedule.timetable import WEEKENDS, Timetable, load_zone
from perfmode.settings.store import SettingsStore

EXAMPLE = "perfmode schedule --night 18:00 --day 08:00"


@app.command("schedule")
def schedule(
    night: Annotated[
        str | None,
        typer.Option(
            metavar="HH:MM",
            help="When performance starts (24-hour, in the --tz zone).",
            show_default=False,
        ),
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            metavar="HH:MM",
            help="When quiet starts (24-hour, in the --tz zone).",
            show_default=False,
        ),
    ] = None,
    weekends: Annotated[
        str | None,
        typer.Option(
            metavar="|".join(WEEKENDS),
            help="What Saturday and Sunday do: hold one mode, or follow the weekday "
            "timetable (default: schedule).",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            metavar="IANA-ZONE",
            help="Time zone of --night, --day and --rule times (default: this machine's).",
            show_default=False,
        ),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            metavar="'CRON=MODE'",
            help="Extra boundary, repeatable: 5-field cron with weekday names, e.g. "
            "'0 12 * * mon-fri=quiet'.",
            show_default=False,
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Print the timetable and the next three switches.")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the timetable.")] = False,
    save_only: Annotated[
        bool,
        typer.Option(
            "--save-only",
            help="Store the timetable and exit (a running daemon follows it within a minute).",
        ),
    ] = False,
    print_systemd_unit: Annotated[
        bool, typer.Option("--print-systemd-unit", help="Print a systemd user unit for this home.")
    ] = False,
    log_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Also log to this file (with times).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Switch modes on a timetable: performance from --night, quiet from --day.

    Stores the timetable in settings.json, then follows it in the foreground
    until Ctrl-C or SIGTERM. A manual `perfmode set` stands until the next
    switch. Without timetable options it follows the stored timetable.
    See docs/schedule.md.

    Examples:
      perfmode schedule --night 18:00 --day 08:00
      perfmode schedule --night 22:00 --day 07:30 --weekends performance --tz Europe/Berlin
      perfmode schedule --rule '0 12 * * mon-fri=quiet' --save-only
      perfmode schedule --show
    """
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file=log_file)
    h = home_of(home)
    timetable_given = any(v is not None for v in (night, day, weekends, tz)) or bool(rule)
    actions = [n for n, on in (("--show", show), ("--clear", clear)) if on]
    if print_systemd_unit:
        actions.append("--print-systemd-unit")
    if len(actions) > 1 or (actions and timetable_given) or (actions and save_only):
        raise UsageError(f"{actions[0]} goes alone (with --home and --json)")
    if json_out and not (show or clear or save_only):
        raise UsageError("--json goes with --show, --clear or --save-only")
    if print_systemd_unit:
        typer.echo(systemd_unit(h), nl=False)
        return
    store = SettingsStore(h.settings)
    if clear:
        cleared = clear_timetable(store)
        if json_out:
            print_json(schedule_report(h, switches=1))
        else:
            typer.echo("Schedule cleared." if cleared else "No schedule to clear.")
        return
    if show:
        _show(h, json_out, switches=3, header="")
        return

    timetable = None
    if timetable_given:
        timetable = Timetable.create(
            tz=tz if tz is not None else machine_zone(),
            night=night,
            day=day,
            weekends=weekends,
            rules=rule or [],
        )
    if save_only:
        if timetable is None:
            raise UsageError(f"--save-only needs a timetable, e.g. {EXAMPLE} --save-only")
        store_timetable(store, timetable)
        _show(h, json_out, switches=1, header="Schedule saved.")
        return

    tick = tick_seconds()
    if timetable is None:
        _stored_timetable(h, store)  # fail before taking the lock: bad input writes nothing
    with stop_on_signals() as stop, DaemonLock(h):
        if timetable is not None:
            store_timetable(store, timetable)
        else:
            _stored_timetable(h, store)
        run_daemon(h, tick_s=tick, stop=stop)


def _stored_timetable(h: Home, store: SettingsStore) -> Timetable:
    stored, problem = timetable_of(store.read())
    if stored is None:
        raise UsageError(problem or f"no schedule in {h.settings}; set one: {EXAMPLE}")
    return stored


def machine_zone() -> str:
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except Exception:
        name = None
    if not name:
        raise UsageError("cannot tell this machine's time zone; pass --tz, e.g. --tz Europe/Berlin")
    load_zone(name)
    return name


def _show(h: Home, json_out: bool, *, switches: int, header: str) -> None:
    report = schedule_report(h, switches=switches)
    if json_out:
        print_json(report)
        return
    if header:
        typer.echo(header)
    if report is None:
        typer.echo(f"No schedule. Set one: {EXAMPLE}")
        return
    for label, value in schedule_status_lines(report, all_switches=True):
        typer.echo(f"{label:<16}{value}")


def schedule_status_lines(
    s: dict[str, Any] | None, *, all_switches: bool = False
) -> list[tuple[str, str]]:
    """Lines for ``perfmode status`` (and ``--show``) from ``schedule_report``'s dict."""
    if s is None:
        return []
    daemon = f"daemon running, pid {s['daemon_pid']}" if s["daemon_pid"] else "no daemon running"
    if s["problem"]:
        return [("Schedule", f"PROBLEM: {s['problem']} ({daemon})")]
    parts = []
    if s["night"]:
        parts.append(f"night {s['night']}, day {s['day']}, weekends {s['weekends']}")
    if s["rules"]:
        parts.append(f"{len(s['rules'])} rule{'s' if len(s['rules']) > 1 else ''}")
    if not s["tz"]:
        return [("Schedule", f"none ({daemon})")]
    lines = [("Schedule", f"{', '.join(parts)} ({s['tz']}); {daemon}")]
    if all_switches:
        lines += [("Rule", r) for r in s["rules"]]
        if s["scheduled_mode"]:
            since = _at(s["scheduled_since"], s["tz"])
            lines.append(("Timetable says", f"{s['scheduled_mode']} since {since}"))
    points = s["next_switches"] if all_switches else s["next_switch"] and [s["next_switch"]]
    label = "Next switches" if all_switches else "Next switch"
    if points and not s["daemon_pid"]:
        return [*lines, *_switches_without_daemon(label, points, s["tz"])]
    for i, p in enumerate(points or []):
        lines.append(
            ("" if i else label, f"{_at(p['at'], s['tz'])} → {p['mode']} (in {_until(p['at'])})")
        )
    return lines


def _switches_without_daemon(
    label: str, points: list[dict[str, Any]], tz: str
) -> list[tuple[str, str]]:
    """The timetable's switches, said not to happen: only a running daemon makes them."""
    why, start = "none while no daemon runs", "start one: perfmode schedule"
    if len(points) == 1:
        p = points[0]
        at = f"{_at(p['at'], tz)} → {p['mode']}"
        return [("Next switch", f"{why} (the timetable says {at}; {start})")]
    lines = [(label, f"{why} ({start}); the timetable says:")]
    lines += [("", f"{_at(p['at'], tz)} → {p['mode']}") for p in points]
    return lines


def _at(iso: str, tz: str) -> str:
    """In the timetable's zone: that is where its times were given."""
    t = parse_time(iso)
    return t.astimezone(load_zone(tz)).strftime("%a %Y-%m-%d %H:%M %Z") if t else "?"


def _until(iso: str) -> str:
    t = parse_time(iso)
    return human_span(max((t - datetime.now(UTC)).total_seconds(), 0) if t else 0)


def _systemd_arg(arg: str) -> str:
    # ExecStart splits on spaces and expands % specifiers and $VARS; quote and escape those.
    arg = arg.replace("%", "%%").replace("$", "$$")
    if any(c in arg for c in " \t\"'\\"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def systemd_unit(h: Home, python: str | None = None) -> str:
    cmd = [python or sys.executable, "-m", "perfmode", "schedule", "--home", str(h.root)]
    return f"""\
# perfmode schedule daemon, as a systemd user service. Install:
#   perfmode schedule --night 18:00 --day 08:00 --save-only --home {h.root}
#   perfmode schedule --print-systemd-unit --home {h.root} \\
#     > ~/.config/systemd/user/perfmode-schedule.service
#   systemctl --user daemon-reload
#   systemctl --user enable --now perfmode-schedule.service
#   loginctl enable-linger "$USER"   # keep it running while you are logged out
[Unit]
Description=perfmode schedule daemon for {h.root}

[Service]
Type=simple
ExecStart={" ".join(_systemd_arg(a) for a in cmd)}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=30
# Exit 2 is a bad or missing timetable: restarting will not fix it.
RestartPreventExitStatus=2

[Install]
WantedBy=default.target
"""
