"""``perfmode set`` and ``perfmode status``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.cli.schedule import schedule_status_lines
from perfmode.gpu import status_lines as gpu_status_lines
from perfmode.holds import set_mode_releasing_holds
from perfmode.report import build_status
from perfmode.settings import Mode, SettingsStore, human_span, parse_time, utc_now


@app.command("set")
def set_mode(
    mode: Annotated[
        Mode,
        typer.Argument(
            help="quiet, performance, auto (performance while nobody uses the computer, "
            "quiet while someone does) or paused (no CPU; any other mode resumes at once); "
            "any case.",
            metavar="MODE",
            case_sensitive=False,
            show_default=False,
        ),
    ],
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Set the mode every trainer of this home follows (within a second); releases holds.

    Creates the home folder and settings.json if they are not there yet.

    Examples:
      perfmode set performance
      perfmode set auto
      perfmode set quiet --home ~/trading
    """
    setup_logging()
    h = home_of(home)
    settings, released = set_mode_releasing_holds(SettingsStore(h.settings), mode, "cli")
    if json_out:
        print_json({**build_status(h), "released_holds": [x.to_json() for x in released]})
        return
    typer.echo(
        f"Mode: {settings.mode.value} (set by {settings.changed_by}, {_when(settings.changed_at)})"
    )
    for x in released:
        typer.echo(f"Released {x.describe()} ({x.mode.value}): a mode you set replaces holds")


@app.command()
def status(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Show the requested mode, who set it, and what the trainer applied.

    Also the trainer's progress and ETA, its last checkpoint, and the schedule.

    Examples:
      perfmode status
      perfmode status --json --home ~/trading
    """
    report = build_status(home_of(home, must_exist=True))
    if json_out:
        print_json(report)
        return
    for label, value in status_lines(report):
        typer.echo(f"{label:<16}{value}")


def status_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    lines = _settings_lines(r)
    for x in r.get("holds") or []:
        lines.insert(1, ("Hold", hold_line(x)))
    t = r["trainer"]
    if t is None:
        last = r["runs"][0] if r["runs"] else None
        extra = f" (last run {last['run']!r} at {last.get('timesteps', 0):,} steps)" if last else ""
        lines.append(("Trainer", "not running" + extra))
    else:
        lines.append(("Trainer", f"running, pid {t['pid']}, run {t['run']!r}"))
        lines.append(("Applied", _applied(t)))
        if t.get("mode_reason"):
            lines.append(("Because", str(t["mode_reason"])[:200]))
        if t.get("paused_since"):
            lines.append(("Paused", f"since {_when(parse_time(t['paused_since']))}"))
        if t.get("input_idle_unknown"):
            lines.append(("Input idle", str(t["input_idle_unknown"])[:200]))
        lines.append(("Progress", _progress(t)))
        if t.get("eta_at"):
            lines.append(("ETA", _eta(t)))
        if t.get("last_checkpoint"):
            lines.append(
                ("Checkpoint", f"{t['last_checkpoint']} ({t['last_checkpoint_timesteps']:,} steps)")
            )
        if t.get("settings_problem"):
            lines.append(("Trainer saw", str(t["settings_problem"])))
        lines += gpu_status_lines(t)
    lines += schedule_status_lines(r.get("schedule"))
    return lines


def _settings_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    if r.get("settings_missing"):  # a new home: nothing is wrong
        return [
            ("Requested mode", f"{r['requested_mode']} (default; no settings.json yet)"),
            ("Settings", f"{r['settings_file']} (not created yet; 'perfmode set' writes it)"),
        ]
    who = (
        f"set by {r['changed_by']}, {_when(parse_time(r['changed_at']))}" if r["changed_by"] else ""
    )
    settings = "ok" if r["settings_ok"] else f"PROBLEM: {r['settings_problem']}"
    return [
        ("Requested mode", f"{r['requested_mode']}  {who}".rstrip()),
        ("Settings", f"{r['settings_file']} ({settings})"),
    ]


def _eta(t: dict[str, Any]) -> str:
    at = parse_time(t.get("eta_at"))
    if at is None:
        return "?"
    left = human_span(max((at - utc_now()).total_seconds(), 0))
    return f"{at.astimezone().strftime('%Y-%m-%d %H:%M %Z')} (in {left}, at the current speed)"


def _applied(t: dict[str, Any]) -> str:
    cpu = t.get("cpu_share")
    cpu_s = f"{cpu:.0%}" if isinstance(cpu, int | float) else "?"
    return (
        f"{t.get('applied_mode')} (batch {t.get('batch_size')}, epochs {t.get('n_epochs')}, "
        f"threads {t.get('torch_threads')}, cpu {cpu_s}) {_when(parse_time(t.get('applied_at')))}"
    )


def _progress(t: dict[str, Any]) -> str:
    done, total, fps = t.get("timesteps") or 0, t.get("total_timesteps") or 0, t.get("fps")
    pct = f" ({done / total:.1%})" if total else ""
    speed = f", {fps:,.0f} steps/s" if isinstance(fps, int | float) else ""
    return f"{done:,} / {total:,} steps{pct}{speed}"


def _when(t: datetime | None) -> str:
    if t is None:
        return "at an unknown time"
    ago = human_span(max((utc_now() - t).total_seconds(), 0))
    return f"at {t.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}, {ago} ago"


def hold_line(x: dict[str, Any]) -> str:
    """One active hold for people: its id, mode, reason and what ends it."""
    until = parse_time(x.get("until"))
    if until is not None:
        left = human_span(max((until - utc_now()).total_seconds(), 0))
        ends = f"until {until.astimezone().strftime('%Y-%m-%d %H:%M %Z')} (in {left})"
    else:
        ends = f"while pid {x.get('pid')} runs"
    reason = f" ({x['reason']})" if x.get("reason") else ""
    return f"{x['id']}: {x['mode']}{reason} {ends}"
