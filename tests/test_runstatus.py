from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from perfmode.home import Home
from perfmode.runstatus import STALE_AFTER_S
from perfmode.settings import format_time, utc_now


def write_status(home: Home, run: str, **fields) -> None:
    home.run_dir(run).mkdir(parents=True, exist_ok=True)
    status = {
        "pid": os.getpid(),
        "heartbeat": format_time(utc_now()),
        "applied_mode": "performance",
        "requested_mode": "performance",
        "applied_at": format_time(utc_now()),
        "batch_size": 256,
        "n_epochs": 6,
        "torch_threads": 2,
        "cpu_share": 1.0,
        "timesteps": 20480,
        "total_timesteps": 1_000_000,
        "fps": 9000.0,
        "last_checkpoint": "runs/x/checkpoints/step_0000020480",
        "last_checkpoint_timesteps": 20480,
        **fields,
    }
    home.status_file(run).write_text(json.dumps(status))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_trainer_shows_what_it_applied(cli, home: Home) -> None:
    write_status(home, "nightly")
    report = json.loads(cli("status", "--json").stdout)
    assert report["trainer"]["run"] == "nightly"
    assert report["trainer"]["running"] is True
    assert report["trainer"]["batch_size"] == 256
    human = cli("status").output
    assert "running, pid" in human and "batch 256, epochs 6, threads 2, cpu 100%" in human
    assert "20,480 / 1,000,000 steps" in human


def test_dead_pid_shows_as_not_running(cli, home: Home) -> None:
    write_status(home, "default", pid=dead_pid())
    report = json.loads(cli("status", "--json").stdout)
    assert report["trainer"] is None
    assert report["runs"][0]["running"] is False
    assert "not running (last run 'default' at 20,480 steps)" in cli("status").output


def test_stale_heartbeat_shows_as_not_running(cli, home: Home) -> None:
    old = utc_now() - timedelta(seconds=STALE_AFTER_S + 5)
    write_status(home, "default", heartbeat=format_time(old))
    report = json.loads(cli("status", "--json").stdout)
    assert report["trainer"] is None


def test_a_damaged_status_file_is_ignored(cli, home: Home) -> None:
    home.run_dir("default").mkdir(parents=True)
    home.status_file("default").write_text('{"pid": 1, "heartb')
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trainer"] is None
