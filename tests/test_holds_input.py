"""Holds given odd input: huge spans, commands that cannot run, crowded or fresh homes, and
reasons that try to write on the terminal."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from perfmode.settings.holds import MAX_HOLDS


def _one_error_line(stderr: str, *words: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("Error: "), stderr
    assert "Traceback" not in stderr
    for w in words:
        assert w in stderr, stderr


@pytest.mark.parametrize("span", ["99999999999d", "1" + "0" * 400 + "s", "30.0000001d"])
def test_a_span_out_of_range_is_one_line(cli, home: Home, span: str) -> None:
    out = cli("hold", "quiet", "--for", span)
    assert out.exit_code == 2, out.output
    _one_error_line(out.stderr, "out of range", "30 days")
    assert not home.settings.exists()


def test_a_command_that_cannot_be_executed_says_so(cli, home: Home, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-program"
    bad.write_bytes(b"\x7fELF-but-not-really\n")
    bad.chmod(0o755)
    out = cli("hold", "quiet", "--", str(bad))
    assert out.exit_code == 126, out.output
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cannot run" in errors[0] and "cannot be executed" in errors[0], errors
    assert str(bad) in errors[0]
    assert "--home" not in out.stderr  # the home is not what is wrong
    assert cli("hold", "--list", "--json").stdout.strip() == "[]"


def test_the_first_hold_in_a_fresh_home_leaves_settings_that_status_calls_ok(
    cli, home: Home
) -> None:
    assert cli("hold", "paused", "--for", "1h").exit_code == 0
    report = json.loads(cli("status", "--json").stdout)
    assert report["settings_ok"], report["settings_problem"]
    assert report["requested_mode"] == "quiet" and len(report["holds"]) == 1
    assert "PROBLEM" not in cli("status").stdout


def _planted_holds(home: Home, n: int) -> None:
    until = format_time(utc_now() + timedelta(hours=1))
    holds = [{"id": f"{i:06x}", "mode": "quiet", "reason": "x", "until": until} for i in range(n)]
    home.settings.write_text(json.dumps({"performance_mode": "quiet", "holds": holds}, indent=2))


def test_status_and_the_list_agree_when_the_holds_do_not_fit(cli, home: Home) -> None:
    _planted_holds(home, 10_000)  # more than settings.json may hold (1 MiB)
    report = json.loads(cli("status", "--json").stdout)
    assert not report["settings_ok"]
    listed = cli("hold", "--list")
    assert listed.exit_code == 1, listed.output
    _one_error_line(listed.stderr, "cannot list the holds", "larger than")
    assert "No active holds" not in listed.stdout


def test_holds_are_bounded_and_the_next_one_says_why(cli, home: Home) -> None:
    _planted_holds(home, MAX_HOLDS)
    assert len(json.loads(cli("hold", "--list", "--json").stdout)) == MAX_HOLDS
    out = cli("hold", "quiet", "--for", "1h")
    assert out.exit_code == 2, out.output
    _one_error_line(out.stderr, f"{MAX_HOLDS} active holds", "--release")


@pytest.mark.parametrize("command", ["status", "hold --list"])
def test_a_reason_cannot_write_on_the_terminal(cli, home: Home, command: str) -> None:
    forged = "x\nRequested mode  performance\x1b[2K\x1b]0;title\x07\u202eevil\r"
    assert cli("hold", "quiet", "--for", "1h", "--reason", forged).exit_code == 0
    # A hand-edited settings.json can put the same in; what is printed must be one line.
    data = json.loads(home.settings.read_text())
    data["holds"][0]["reason"] = forged
    home.settings.write_text(json.dumps(data))
    out = cli(*command.split())
    assert out.exit_code == 0, out.output
    for bad in ("\x1b", "\x07", "\r", "\u202e"):
        assert bad not in out.stdout
    hold_lines = [line for line in out.stdout.splitlines() if line.startswith("Requested mode")]
    assert len(hold_lines) == (1 if command == "status" else 0), out.stdout
    assert "\\x1b[2K" in out.stdout  # shown, not obeyed
