"""``perfmode schedule`` input handling, --show/--clear/--save-only, and the status lines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perfmode.base.home import Home
from tests.conftest import run_perfmode


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--night", "25:00", "--day", "08:00"], "bad time '25:00' for --night"),
        (["--night", "24:00", "--day", "08:00"], "bad time '24:00'"),
        (["--night", "18:00", "--day", "7pm"], "bad time '7pm' for --day"),
        (["--night", "18:00", "--day", "18:00"], "must differ"),
        (["--night", "18:00", "--day", "08:00", "--tz", "Mars/Base"], "unknown time zone"),
        (["--night", "18:00", "--day", "08:00", "--weekends", "often"], "--weekends"),
        (["--rule", "0 18 * * 1-5"], "bad rule"),
        (["--rule", "61 18 * * *=quiet"], "bad rule"),
        (["--night", "18:00"], "needs --day"),
        (["--show", "--night", "18:00", "--day", "08:00"], "goes alone"),
        (["--show", "--clear"], "goes alone"),
        (["--json"], "--json goes with"),
        (["--save-only"], "needs a timetable"),
        ([], "no schedule in"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli, home: Home, args: list[str], needle: str
) -> None:
    result = cli("schedule", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(home.root.iterdir()) == []


def test_save_only_show_and_clear(cli, home: Home) -> None:
    result = cli(
        "schedule", "--night", "18:00", "--day", "08:00", "--weekends", "quiet",
        "--tz", "America/New_York", "--rule", "0 12 * * mon-fri=performance", "--save-only",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(home.settings.read_text())["schedule"] == {
        "night": "18:00",
        "day": "08:00",
        "weekends": "quiet",
        "tz": "America/New_York",
        "rules": ["0 12 * * mon-fri=performance"],
    }
    shown = cli("schedule", "--show")
    assert shown.exit_code == 0, shown.output
    assert "night 18:00, day 08:00, weekends quiet, 1 rule (America/New_York)" in shown.output
    assert "no daemon running" in shown.output
    assert shown.output.count(" → ") == 3  # the next three switches
    report = json.loads(cli("schedule", "--show", "--json").stdout)
    assert len(report["next_switches"]) == 3 and report["daemon_pid"] is None
    assert report["next_switch"] == report["next_switches"][0]
    assert cli("schedule", "--clear").exit_code == 0
    assert "schedule" not in json.loads(home.settings.read_text())
    assert "No schedule" in cli("schedule", "--show").output
    assert json.loads(cli("schedule", "--show", "--json").stdout) is None


def test_the_machine_zone_is_the_default(cli, home: Home) -> None:
    from tzlocal import get_localzone_name

    assert cli("schedule", "--night", "22:00", "--day", "6:00", "--save-only").exit_code == 0
    stored = json.loads(home.settings.read_text())["schedule"]
    assert stored["tz"] == get_localzone_name()
    assert stored["day"] == "06:00"


def test_status_shows_the_schedule_and_next_switch(cli, home: Home) -> None:
    cli("schedule", "--night", "18:00", "--day", "08:00", "--tz", "UTC", "--save-only")
    report = json.loads(cli("status", "--json").stdout)["schedule"]
    assert {"night", "day", "tz", "daemon_pid", "next_switch"} <= report.keys()
    assert (report["night"], report["day"], report["tz"], report["daemon_pid"]) == (
        "18:00",
        "08:00",
        "UTC",
        None,
    )
    assert report["next_switch"]["mode"] in ("performance", "quiet")
    assert report["next_switch"]["at"].endswith("Z")
    text = cli("status").output
    assert "Schedule" in text and "Next switch" in text


def test_status_without_a_schedule_has_none(cli) -> None:
    assert json.loads(cli("status", "--json").stdout)["schedule"] is None


def test_print_systemd_unit_runs_this_python_for_this_home(cli, home: Home) -> None:
    result = cli("schedule", "--print-systemd-unit")
    assert result.exit_code == 0
    assert f"ExecStart={sys.executable} -m perfmode schedule --home {home.root}" in result.output
    assert "WantedBy=default.target" in result.output
    assert list(home.root.iterdir()) == []


def test_systemd_unit_quotes_spaces_and_specifiers() -> None:
    from pathlib import Path

    from perfmode.schedule.service import systemd_unit

    unit = systemd_unit(Path("/home/a b/100%"), python="/usr/bin/python3")
    assert 'schedule --home "/home/a b/100%%"' in unit


def test_status_does_not_import_apscheduler(home: Home) -> None:
    schedule = {"night": "18:00", "day": "08:00", "tz": "UTC", "rules": ["0 12 * * *=quiet"]}
    home.settings.write_text(json.dumps({"schedule": schedule}))
    code = (
        "import sys; from perfmode.cli import app; from perfmode.status.report import build_status; "
        f"from perfmode.base.home import resolve_home; build_status(resolve_home({str(home.root)!r})); "
        "print('apscheduler' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_real_command_rejects_bad_input_with_exit_2(home: Home) -> None:
    result = run_perfmode(
        "schedule", "--night", "25:00", "--day", "08:00", "--home", str(home.root)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: bad time '25:00' for --night; use 24-hour HH:MM, e.g. 18:00"
    ]
    assert not home.settings.exists()
