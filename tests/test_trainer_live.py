"""A real trainer process, steered the way users steer it."""

from __future__ import annotations

import json
import signal

from perfmode.checkpoints import list_checkpoints
from perfmode.home import Home
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import (
    log_text,
    metrics_rows,
    read_status,
    start_trainer,
    write_config,
)


def test_mode_switches_from_cli_hand_edit_and_corrupt_file_then_sigterm_saves(
    home: Home, tmp_path
) -> None:
    config = write_config(
        tmp_path / "tiny.yaml",
        training={"total_timesteps": 10_000_000},
        modes={"performance": {"batch_size_multiplier": 2.0, "epochs_multiplier": 1.5}},
    )
    run_perfmode("set", "quiet", "--home", str(home.root))
    proc = start_trainer(home, config)
    try:
        wait_for(
            "the trainer to apply quiet",
            lambda: read_status(home).get("applied_mode") == "quiet",
            proc=proc,
        )

        # perfmode set: threads/cpu at once, batch ×2 and epochs ×1.5 from the next update.
        assert run_perfmode("set", "performance", "--home", str(home.root)).returncode == 0
        wait_for(
            "the performance log line",
            lambda: "Performance mode: performance (batch 64, epochs 3" in log_text(home),
            proc=proc,
        )
        wait_for(
            "an update with the performance batch",
            lambda: any(
                r["mode"] == "performance" and r["batch_size"] == "64" and r["n_epochs"] == "3"
                for r in metrics_rows(home)
            ),
            proc=proc,
        )
        report = json.loads(run_perfmode("status", "--json", "--home", str(home.root)).stdout)
        assert report["trainer"] is not None and report["trainer"]["pid"] == proc.pid
        assert report["trainer"]["applied_mode"] == "performance"

        # A hand edit, as the original system documents it.
        n_quiet_lines = log_text(home).count("Performance mode: quiet")
        home.settings.write_text('{"performance_mode": "quiet"}')
        wait_for(
            "the quiet log line",
            lambda: log_text(home).count("Performance mode: quiet") > n_quiet_lines,
            proc=proc,
        )
        rows_before = len(metrics_rows(home))
        wait_for(
            "an update with the quiet batch",
            lambda: any(
                r["batch_size"] == "32" and r["n_epochs"] == "2"
                for r in metrics_rows(home)[rows_before + 1 :]
            ),
            proc=proc,
        )

        # Back to performance, then a corrupt file: quiet, one warning, training goes on.
        run_perfmode("set", "performance", "--home", str(home.root))
        wait_for(
            "performance again",
            lambda: read_status(home).get("applied_mode") == "performance",
            proc=proc,
        )
        home.settings.write_text('{"performance_mode": "perf')
        wait_for(
            "the fallback to quiet",
            lambda: read_status(home).get("applied_mode") == "quiet",
            proc=proc,
        )
        steps = read_status(home)["timesteps"]
        wait_for(
            "training to go on", lambda: read_status(home).get("timesteps", 0) > steps, proc=proc
        )
        assert log_text(home).count("not valid JSON") == 1
        assert "not valid JSON" in read_status(home)["settings_problem"]

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SIGTERM" in out
    status = read_status(home)
    assert status["state"] == "stopped"
    newest = list_checkpoints(home.checkpoints_dir())[0]
    assert json.loads((newest / "meta.json").read_text())["timesteps"] == status["timesteps"]
    assert status["last_checkpoint"] == str(newest)
    # Every switch logged exactly one line.
    assert log_text(home).count("⚙️ Performance mode:") == 5


def test_kill_9_after_a_checkpoint_then_resume_continues(home: Home, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    run_perfmode("set", "performance", "--home", str(home.root))
    proc = start_trainer(home, config)
    try:
        wait_for(
            "a checkpoint",
            lambda: (read_status(home).get("last_checkpoint_timesteps") or 0) >= 512,
            proc=proc,
        )
    finally:
        proc.kill()
        proc.wait()
    saved = read_status(home)["last_checkpoint_timesteps"]
    newest = list_checkpoints(home.checkpoints_dir())[0]
    assert int(newest.name.split("_")[1]) >= saved

    result = run_perfmode(
        "train",
        "--config",
        str(config),
        "--home",
        str(home.root),
        "--timesteps",
        str(saved + 512),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"Resuming run 'default' from {newest.name}" in result.stderr
    rows = metrics_rows(home)
    resumed = [
        int(r["timesteps"]) for r in rows if int(r["timesteps"]) > int(newest.name.split("_")[1])
    ]
    assert resumed and resumed[-1] >= saved + 512
    # A second resume at the target has nothing to do and says so.
    again = run_perfmode(
        "train", "--config", str(config), "--home", str(home.root), "--timesteps", str(saved + 512)
    )
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr


def test_second_trainer_on_the_same_run_is_refused(home: Home, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    proc = start_trainer(home, config)
    try:
        wait_for("the trainer", lambda: read_status(home).get("pid") == proc.pid, proc=proc)
        second = run_perfmode("train", "--config", str(config), "--home", str(home.root))
        assert second.returncode == 1
        assert f"run 'default' in {home.root} is already being trained (pid {proc.pid})" in (
            second.stderr
        )
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
