"""A real trainer in ``auto`` next to a real CPU burner, and a real trainer ``paused``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from perfmode.base.clock import parse_time
from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import (
    log_text,
    metrics_rows,
    read_status,
    start_trainer,
    trainer_output,
    write_config,
)

LONG = {"total_timesteps": 10_000_000}


def _no_display(monkeypatch) -> None:
    # Input idle from the test's own desktop (if any) must not decide: CPU use alone does.
    for var in ("DISPLAY", "XDG_SESSION_ID", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)


def _other_programs_load(seconds: float = 2.0) -> float:
    """Cores the rest of the machine uses now (it is shared: other work may be running)."""
    return psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or 1)


def _auto_config(tmp_path, needs: str, resume_after: float = 5):
    """A long run whose auto threshold sits half a core above what the (possibly shared)
    machine already runs, so a full core more crosses it and the rest does not."""
    cores = psutil.cpu_count() or 1
    baseline = _other_programs_load(3.0)
    threshold = round(max(0.5, baseline + 0.5), 2)
    if threshold > cores - 0.4:
        pytest.skip(f"other programs use {baseline:.1f} of {cores} cores; {needs}")
    return write_config(
        tmp_path / "auto.yaml",
        training=LONG,
        auto={"foreign_cpu": threshold, "resume_after": resume_after},
    )


def test_auto_goes_quiet_next_to_a_cpu_burner_and_back_after_the_hold_off(
    home: Home, tmp_path, monkeypatch
) -> None:
    _no_display(monkeypatch)
    config = _auto_config(tmp_path, "no core for a burner")
    assert run_perfmode("set", "Auto", "--home", str(home.root)).returncode == 0
    proc = start_trainer(home, config)
    burner = None
    try:
        wait_for(
            "auto to choose performance on a quiet machine",
            lambda: read_status(home).get("applied_mode") == "performance",
            timeout=120,
            proc=proc,
        )
        status = read_status(home)
        assert status["requested_mode"] == "auto"
        assert status["mode_reason"].startswith("auto: other programs")
        assert status["input_idle_unknown"] == "input idle unknown here; deciding on CPU use alone"

        # A burner that is no child of the trainer: it is "another program".
        started = time.time()
        burner = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], start_new_session=True
        )
        wait_for(
            "quiet next to the burner",
            lambda: read_status(home).get("applied_mode") == "quiet",
            timeout=120,
            proc=proc,
        )
        quiet = read_status(home)
        reacted = parse_time(quiet["applied_at"]).timestamp() - started
        assert reacted <= 15, f"quiet came {reacted:.1f} s after the burner started"
        assert quiet["mode_reason"].startswith("auto: other programs")
        assert "Performance mode: quiet" in log_text(home)

        burner.kill()
        burner.wait()
        ended = time.time()
        wait_for(
            "performance after the burner ended",
            lambda: read_status(home).get("applied_mode") == "performance",
            timeout=120,
            proc=proc,
        )
        back = parse_time(read_status(home)["applied_at"]).timestamp() - ended
        assert back >= 5 - 1, f"performance came back {back:.1f} s after, before the hold-off"
        report = run_perfmode("status", "--home", str(home.root)).stdout
        assert "Because" in report and "auto:" in report
    finally:
        if burner is not None and burner.poll() is None:
            burner.kill()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert proc.returncode == 0


def test_paused_uses_no_cpu_resumes_at_once_and_a_stop_while_paused_saves(
    home: Home, tmp_path, monkeypatch
) -> None:
    _no_display(monkeypatch)
    config = write_config(tmp_path / "tiny.yaml", training=LONG)
    run_perfmode("set", "performance", "--home", str(home.root))
    proc = start_trainer(home, config)
    try:
        wait_for(
            "two updates",
            lambda: len(metrics_rows(home)) >= 2,
            timeout=120,
            proc=proc,
        )
        assert run_perfmode("set", "paused", "--home", str(home.root)).returncode == 0
        wait_for(
            "paused", lambda: read_status(home).get("state") == "paused", timeout=60, proc=proc
        )
        paused = read_status(home)
        assert paused["applied_mode"] == "paused" and paused["paused_since"]
        assert "Paused since" in log_text(home)
        assert "Paused" in run_perfmode("status", "--home", str(home.root)).stdout
        # A checkpoint no older than checkpoint_freq steps (256) was kept on pausing.
        assert paused["timesteps"] - (paused["last_checkpoint_timesteps"] or 0) < 256 + 128

        trainer = psutil.Process(proc.pid)
        cpu0, t0 = trainer.cpu_times(), time.monotonic()
        time.sleep(10)
        cpu1, t1 = trainer.cpu_times(), time.monotonic()
        share = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
        assert share < 0.02, f"paused trainer used {share:.1%} of a core"
        steps_paused = read_status(home)["timesteps"]

        assert run_perfmode("set", "performance", "--home", str(home.root)).returncode == 0
        wait_for(
            "training again",
            lambda: read_status(home).get("applied_mode") == "performance",
            timeout=60,
            proc=proc,
        )
        s = read_status(home)
        settings_at = parse_time(
            __import__("json").loads(home.settings.read_text())["changed_at"]
        ).timestamp()
        lag = parse_time(s["applied_at"]).timestamp() - settings_at
        assert lag < 1.0, f"resumed {lag:.2f} s after the mode changed"
        wait_for(
            "steps past the pause",
            lambda: read_status(home).get("timesteps", 0) > steps_paused,
            timeout=60,
            proc=proc,
        )
        # Nothing lost, nothing reloaded: steps carry on from where the pause left them.
        assert "Resum" not in log_text(home).split("Paused since")[-1].split("\n", 1)[0]

        run_perfmode("set", "paused", "--home", str(home.root))
        wait_for("paused again", lambda: read_status(home).get("state") == "paused", proc=proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = trainer_output(proc)
    assert proc.returncode == 0, out
    assert "Stopped at" in out
    assert list_checkpoints(home.checkpoints_dir("default"))


def test_two_trainers_in_auto_do_not_count_each_other_as_someone_using_the_computer(
    home: Home, tmp_path, monkeypatch
) -> None:
    """Two runs side by side in one home (two seeds, say), both in auto, nobody at the
    machine: each must see the other as perfmode's work, not as a user's program, or both
    sit in quiet for good."""
    _no_display(monkeypatch)
    # A run that starts counts as other programs until its status file names it: the
    # first one may go quiet for that moment; a short hold-off brings it back soon.
    config = _auto_config(tmp_path, "no room for two runs", resume_after=2)
    assert run_perfmode("set", "auto", "--home", str(home.root)).returncode == 0
    procs = [start_trainer(home, config, "--run", run) for run in ("a", "b")]
    try:

        def both(mode: str) -> bool:
            return all(read_status(home, run).get("applied_mode") == mode for run in "ab")

        for proc in procs:
            wait_for(
                "both runs training",
                lambda: all(read_status(home, run).get("timesteps") for run in "ab"),
                timeout=120,
                proc=proc,
            )
        wait_for("both runs in performance", lambda: both("performance"), timeout=60)
        # ...and staying there: auto re-decides every 2 s (three readings in 5 s).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert both("performance"), [read_status(home, run).get("mode_reason") for run in "ab"]
            time.sleep(0.5)
        for run in "ab":
            status = read_status(home, run)
            assert status["other_trainers_cpu"] > 0.3, status  # it does see the other run
            assert status["mode_reason"].startswith("auto: other programs")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=120)
    assert [proc.returncode for proc in procs] == [0, 0]
