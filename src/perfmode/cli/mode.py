"""``perfmode set`` and ``perfmode status``."""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any

import typer

from perfmode.base.clock import human_span, local_time, parse_time, since, utc_now, when
from perfmode.base.modes import help_line, mode_names
from perfmode.base.text import printable
from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.cli.schedule import schedule_status_lines
from perfmode.governor.gpu import status_lines as gpu_status_lines
from perfmode.settings.holds import set_mode_releasing_holds
from perfmode.settings.store import SettingsStore
from perfmode.status.model import ProgressSection, RunView, TrainerStatus
from perfmode.status.report import build_status

# Typer lists and completes an Enum's values; this one is built from the mode table.
ModeChoice = enum.Enum("ModeChoice", {n: n for n in mode_names()}, type=str)  # type: ignore[misc]


@app.command("set")
def set_mode(
    mode: Annotated[
        ModeChoice,  # type: ignore[valid-type]
        typer.Argument(
            help=f"{help_line()} (any case).",
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
    settings, released = set_mode_releasing_holds(SettingsStore(h.settings), mode.value, "cli")
    if json_out:
        print_json({**build_status(h), "released_holds": [x.to_json() for x in released]})
        return
    typer.echo(
        f"Mode: {settings.mode.value} (set by {settings.changed_by}, {when(settings.changed_at)})"
    )
    for x in released:
        typer.echo(
            printable(f"Released {x.describe()} ({x.mode.value}): a mode you set replaces holds")
        )


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
        typer.echo(f"{label:<16}{printable(value)}")


def status_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    lines = _settings_lines(r)
    for x in r.get("holds") or []:
        lines.insert(1, ("Hold", hold_line(x)))
    if r["trainer"] is None:
        last = RunView.from_json(r["runs"][0]).status if r["runs"] else None
        extra = (
            f" (last run {last.run.run!r} at {_steps(last.progress.timesteps)} steps)"
            if last
            else ""
        )
        lines.append(("Trainer", "not running" + extra))
    else:
        lines += _trainer_lines(RunView.from_json(r["trainer"]))
    lines += home_budget_lines([RunView.from_json(x) for x in r.get("runs") or []])
    lines += schedule_status_lines(r.get("schedule"))
    return lines


def home_budget_lines(runs: list[RunView]) -> list[tuple[str, str]]:
    """One line per live run: its state, its share of the home's budget, and why."""
    lines = []
    for view in runs:
        t, budget = view.status, view.status.budget
        if not view.alive or budget.state is None:
            continue
        state = t.run.state if t.run.state in ("training", "waiting", "paused") else "?"
        share = budget.cpu_share
        if state == "waiting":
            how = "0 cores"
        elif share is not None and 0 <= share < 1:
            how = f"{share:.2g} cores"
        else:
            cores = budget.cores or 1
            how = f"{_steps(cores)} core{'' if cores == 1 else 's'}"
        label = f"Run {_printable(t.run.run, 24)}"
        lines.append((label, f"{state}, {how}: {_printable(budget.reason, 160)}"))
    return lines


def _printable(v: Any, limit: int) -> str:
    """``v`` without control characters (a status file must not forge a terminal line)."""
    text = _text(v, limit)
    return "".join(c if c.isprintable() else "?" for c in text)


def _trainer_lines(view: RunView) -> list[tuple[str, str]]:
    # Every value below comes from a status.json anyone can edit: the model left None for
    # what is missing or of the wrong type, shown as '?'; text is cut to a printable size.
    t = view.status
    pid, run = t.run.pid, t.run.run
    lines = []
    if view.running:
        lines.append(("Trainer", f"running, pid {pid}, run {run!r}"))
    else:
        last = since(parse_time(view.not_responding_since))
        lines.append(("Trainer", f"NOT RESPONDING since {last}: pid {pid}, run {run!r}"))
        if view.suspended:
            hint = f"the process is stopped (SIGSTOP or Ctrl-Z); `kill -CONT {pid}` resumes it"
        else:
            hint = f"no heartbeat since; if it hangs, `kill {pid}` stops it"
        lines.append(("", f"{hint}; the figures below are from its last heartbeat"))
    lines.append(("Applied", _applied(t)))
    if t.mode.mode_reason:
        lines.append(("Because", _text(t.mode.mode_reason, 200)))
    if t.mode.paused_since:
        lines.append(("Paused", f"since {since(parse_time(t.mode.paused_since))}"))
    if t.idle.input_idle_unknown:
        lines.append(("Input idle", _text(t.idle.input_idle_unknown, 200)))
    lines.append(("Progress", _progress(t.progress)))
    if t.progress.eta_at:
        lines.append(("ETA", _eta(t.progress.eta_at)))
    if t.checkpoint.last_checkpoint:
        at = _steps(t.checkpoint.last_checkpoint_timesteps)
        lines.append(("Checkpoint", f"{_text(t.checkpoint.last_checkpoint, 200)} ({at} steps)"))
    if t.mode.settings_problem:
        lines.append(("Trainer saw", _text(t.mode.settings_problem, 300)))
    return lines + gpu_status_lines(t)


def _settings_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    if r.get("settings_missing"):  # a new home: nothing is wrong
        return [
            ("Requested mode", f"{r['requested_mode']} (default; no settings.json yet)"),
            ("Settings", f"{r['settings_file']} (not created yet; 'perfmode set' writes it)"),
        ]
    who = (
        f"set by {r['changed_by']}, {when(parse_time(r['changed_at']))}" if r["changed_by"] else ""
    )
    settings = "ok" if r["settings_ok"] else f"PROBLEM: {r['settings_problem']}"
    return [
        ("Requested mode", f"{r['requested_mode']}  {who}".rstrip()),
        ("Settings", f"{r['settings_file']} ({settings})"),
    ]


def _eta(eta_at: str) -> str:
    at = parse_time(eta_at)
    if at is None:
        return "?"
    left = human_span(max((at - utc_now()).total_seconds(), 0))
    return f"{local_time(at)} (in {left}, at the current speed)"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _text(v: Any, limit: int = 40) -> str:
    text = v if isinstance(v, str) else "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _steps(v: Any) -> str:
    n = _int(v)
    return f"{n:,}" if n is not None and abs(n) < 10**15 else "?"


def _applied(t: TrainerStatus) -> str:
    # A waiting run uses no CPU (an earlier trainer wrote its profile's share meanwhile).
    waiting = "waiting" in (t.run.state, t.budget.state)
    cpu = 0.0 if waiting else _num(t.knobs.cpu_share)
    cpu_s = f"{cpu:.0%}" if cpu is not None and abs(cpu) < 1e6 else "?"
    k = t.knobs
    knobs = f"batch {_steps(k.batch_size)}, epochs {_steps(k.n_epochs)}, threads {_steps(k.torch_threads)}"
    applied = when(parse_time(t.mode.applied_at))
    wait = ", waiting" if waiting else ""
    owed = _num(k.payback_s)
    if not waiting and owed is not None and 0 < owed < 1e6:
        wait = f", paying back its start-up: resting {owed:.0f} s"
    return f"{_text(t.mode.applied_mode)} ({knobs}, cpu {cpu_s}{wait}) {applied}"


def _progress(p: ProgressSection) -> str:
    done, total, fps = p.timesteps, p.total_timesteps, p.fps
    pct = f" ({done / total:.1%})" if done is not None and total and abs(done / total) < 1e6 else ""
    speed = f", {fps:,.0f} steps/s" if fps is not None and abs(fps) < 1e15 else ""
    return f"{_steps(done)} / {_steps(total)} steps{pct}{speed}"


def hold_line(x: dict[str, Any]) -> str:
    """One active hold for people: its id, mode, reason and what ends it."""
    until = parse_time(x.get("until"))
    if until is not None:
        left = human_span(max((until - utc_now()).total_seconds(), 0))
        ends = f"until {local_time(until)} (in {left})"
    else:
        ends = f"while pid {x.get('pid')} runs"
    reason = f" ({x['reason']})" if x.get("reason") else ""
    return f"{x['id']}: {x['mode']}{reason} {ends}"
