from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from perfmode.cli.mode import status_lines
from perfmode.status.file import NOT_RESPONDING_AFTER_S
from perfmode.status.report import build_status
from tests.conftest import run_perfmode


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


def test_a_live_pid_with_a_stale_heartbeat_is_not_responding(home: Home) -> None:
    beat = utc_now()
    write_status(home, "default", heartbeat=format_time(beat))
    later = beat + timedelta(seconds=NOT_RESPONDING_AFTER_S + 5)
    report = build_status(home, later)
    t = report["trainer"]
    assert t is not None and t["pid"] == os.getpid()
    assert (t["alive"], t["running"], t["suspended"]) == (True, False, False)
    assert t["not_responding_since"] == format_time(beat)
    lines = dict(status_lines(report))
    assert lines["Trainer"].startswith("NOT RESPONDING since ")
    assert f"pid {os.getpid()}" in lines["Trainer"]
    assert "20,480 / 1,000,000 steps" in lines["Progress"]  # its last figures, said to be so


def test_a_stale_heartbeat_from_a_dead_pid_is_not_running(cli, home: Home) -> None:
    old = utc_now() - timedelta(seconds=NOT_RESPONDING_AFTER_S + 5)
    write_status(home, "default", heartbeat=format_time(old), pid=dead_pid())
    report = json.loads(cli("status", "--json").stdout)
    assert report["trainer"] is None


def test_a_pid_taken_over_by_a_newer_process_is_not_the_trainer(home: Home) -> None:
    # The heartbeat predates this (live) process: the trainer that wrote it is gone.
    created = datetime.fromtimestamp(psutil.Process().create_time(), UTC)
    write_status(home, "default", heartbeat=format_time(created - timedelta(hours=1)))
    report = build_status(home)
    assert report["trainer"] is None and report["runs"][0]["running"] is False


def test_a_damaged_status_file_is_ignored(cli, home: Home) -> None:
    home.run_dir("default").mkdir(parents=True)
    home.status_file("default").write_text('{"pid": 1, "heartb')
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trainer"] is None


def test_a_status_file_that_is_a_fifo_does_not_block_status(home: Home) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    home.run_dir("default").mkdir(parents=True)
    os.mkfifo(home.status_file("default"))
    proc = run_perfmode("status", "--json", "--home", str(home.root), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"] == []


def test_a_run_folder_no_run_can_have_is_skipped(cli, home: Home) -> None:
    write_status(home, "good")
    (home.runs_dir / "bad name").mkdir()
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    assert [r["run"] for r in json.loads(result.stdout)["runs"]] == ["good"]


def test_timesteps_null_does_not_crash_status(cli, home: Home) -> None:
    write_status(home, "default", timesteps=None, pid=dead_pid())
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "last run 'default' at ? steps" in result.output
    write_status(home, "default", timesteps=None, total_timesteps=None, fps=None)
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "? / ? steps" in result.output


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "pid", "heartbeat", "run", "applied_mode", "applied_at", "batch_size", "n_epochs",
    "torch_threads", "cpu_share", "timesteps", "total_timesteps", "fps", "last_checkpoint",
    "last_checkpoint_timesteps", "settings_problem", "alive", "suspended", "running",
    "not_responding_since", "gpu", "device", "state", "oom_events", "batch_cap",
]  # fmt: skip
GPU_FIELDS = [
    "name", "util_pct", "mem_used_mib", "mem_total_mib", "temp_c", "power_w", "guard",
    "guard_limit_c", "problem",
]  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS), JSON),
    gpu=st.none() | st.dictionaries(st.sampled_from(GPU_FIELDS), JSON | st.just("x")),
    live=st.booleans(),
    raw=st.none() | st.binary(max_size=40),
)
def test_status_never_crashes_on_any_status_json(home: Home, fields, gpu, live, raw) -> None:
    home.run_dir("default").mkdir(parents=True, exist_ok=True)
    if raw is not None:
        home.status_file("default").write_bytes(raw)
    else:
        # Live: this process's pid and a fresh heartbeat, so every field is shown.
        base = {"pid": os.getpid(), "heartbeat": format_time(utc_now())} if live else {}
        if gpu is not None:
            fields = {**fields, "gpu": {"name": "GPU", **gpu}, "device": "cuda"}
        home.status_file("default").write_text(json.dumps({**fields, **base}))
    report = build_status(home)
    json.dumps(report, allow_nan=False)  # `status --json` prints valid JSON
    for label, value in status_lines(report):
        assert isinstance(label, str) and isinstance(value, str)
        assert len(value) < 1000
