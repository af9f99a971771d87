"""Holds with real holder processes: released however the holder ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil

from perfmode.base.home import Home
from perfmode.settings.holds import active_holds, add_hold, holds_in, parse_duration
from perfmode.settings.store import SettingsStore
from tests.conftest import PERFMODE, run_perfmode, wait_for


def _holds(home: Home) -> list[dict]:
    out = run_perfmode("hold", "--list", "--json", "--home", str(home.root))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_hold_while_a_command_runs_passes_its_status_and_releases(home: Home) -> None:
    run_perfmode("set", "performance", "--home", str(home.root))
    proc = subprocess.Popen(
        [*PERFMODE, "hold", "quiet", "--home", str(home.root), "--", "sh", "-c", "sleep 5; exit 7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    held = wait_for("the hold", lambda: _holds(home), timeout=60)
    assert held[0]["mode"] == "quiet" and held[0]["reason"] == "sh"
    status = json.loads(run_perfmode("status", "--json", "--home", str(home.root)).stdout)
    assert status["holds"][0]["id"] == held[0]["id"]
    assert proc.wait(timeout=60) == 7
    assert _holds(home) == []
    data = json.loads(home.settings.read_text())
    assert data["holds"] == [] and data["performance_mode"] == "performance"


def test_signals_reach_the_command_and_its_status_is_the_exit_code(home: Home) -> None:
    proc = subprocess.Popen(
        [*PERFMODE, "hold", "paused", "--home", str(home.root), "--", "sleep", "60"],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for("the hold", lambda: _holds(home), timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM  # sleep died of the SIGTERM
    assert _holds(home) == []


def test_a_holder_killed_with_9_holds_nothing(home: Home) -> None:
    proc = subprocess.Popen(
        [*PERFMODE, "hold", "quiet", "--home", str(home.root), "--", "sleep", "60"],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for("the hold", lambda: _holds(home), timeout=60)
        proc.kill()
        proc.wait()
        assert _holds(home) == []  # ignored at once...
        assert holds_in(json.loads(home.settings.read_text())) == []  # ...and cleaned up
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_a_reused_pid_does_not_keep_a_dead_holders_hold() -> None:
    me = psutil.Process()
    entry = {"id": "a1b2c3", "mode": "quiet", "pid": me.pid, "pid_started": me.create_time() - 50}
    assert active_holds({"holds": [entry]}) == []
    entry["pid_started"] = me.create_time()
    assert [h.id for h in active_holds({"holds": [entry]})] == ["a1b2c3"]


def test_for_expires_and_set_releases_holds_saying_so(home: Home) -> None:
    out = run_perfmode("hold", "performance", "--for", "2s", "--home", str(home.root))
    assert out.returncode == 0 and "Holding" in out.stdout
    assert _holds(home)[0]["mode"] == "performance"
    time.sleep(2.5)
    assert _holds(home) == []

    run_perfmode("hold", "quiet", "--for", "1h", "--reason", "call", "--home", str(home.root))
    out = run_perfmode("set", "performance", "--home", str(home.root))
    assert out.returncode == 0 and "Released hold" in out.stdout and "(call)" not in out.stderr
    assert _holds(home) == []


def test_holds_keep_unknown_keys_and_a_corrupt_file_reads_quiet(home: Home) -> None:
    store = SettingsStore(home.settings)
    home.settings.write_text('{"performance_mode": "performance", "mine": [1, 2]}')
    add_hold(store, "paused", reason="x", pid=os.getpid())
    data = json.loads(home.settings.read_text())
    assert data["mine"] == [1, 2] and data["holds"][0]["mode"] == "paused"
    home.settings.write_text('{"holds": [')
    assert store.read().mode.value == "quiet" and holds_in(store.read().data) == []


def test_bad_input_is_one_line_and_exit_2(home: Home) -> None:
    for args, words in [
        (["hold", "auto", "--for", "1h"], "a hold keeps one mode"),
        (["hold", "quiet", "--for", "tomorrow"], "bad duration"),
        (["hold", "quiet"], "give either a command"),
        (["hold", "--release", "nope"], "no active hold"),
        (["set", "fast"], "fast"),
    ]:
        out = run_perfmode(*args, "--home", str(home.root))
        assert out.returncode == 2, (args, out.stderr)
        assert words in out.stderr, (args, out.stderr)
    assert parse_duration("1h30m").total_seconds() == 5400
