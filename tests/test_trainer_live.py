"""A real trainer process, steered the way users steer it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from tests.conftest import WAIT_S, run_perfmode, wait_for
from tests.trainkit import (
    documented_status_keys,
    log_text,
    metrics_rows,
    read_status,
    start_trainer,
    stop_trainer,
    trainer_output,
    write_config,
)


def test_mode_switches_from_cli_hand_edit_and_corrupt_file_then_sigterm_saves(
    cli, home: Home, tmp_path
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
        top, trainer = documented_status_keys()
        assert top <= report.keys(), top - report.keys()
        assert trainer <= report["trainer"].keys(), trainer - report["trainer"].keys()

        # A second trainer on the same run is refused, naming the first.
        second = cli("train", "--config", str(config))
        assert second.exit_code == 1
        assert second.stderr.strip().splitlines()[-1].startswith("Error: ")
        assert f"pid {proc.pid}" in second.stderr

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
        proc.wait(timeout=WAIT_S)
    finally:
        stop_trainer(proc)
    out = trainer_output(proc)
    assert proc.returncode == 0, out
    assert "SIGTERM" in out
    status = read_status(home)
    assert status["state"] == "stopped"
    newest = list_checkpoints(home.checkpoints_dir())[0]
    assert json.loads((newest / "meta.json").read_text())["timesteps"] == status["timesteps"]
    assert status["last_checkpoint"] == str(newest)
    # Every switch logged exactly one line.
    assert log_text(home).count("⚙️ Performance mode:") == 5


def test_kill_9_after_a_checkpoint_then_resume_continues(cli, home: Home, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    run_perfmode("set", "performance", "--home", str(home.root))
    proc = start_trainer(home, config)
    try:
        wait_for(
            "a checkpoint",
            lambda: (read_status(home).get("last_checkpoint_timesteps") or 0) >= 256,
            proc=proc,
        )
    finally:
        stop_trainer(proc)
    newest = list_checkpoints(home.checkpoints_dir())[0]
    at = int(newest.name.split("_")[1])
    assert at >= 256
    target = at + 384
    result = cli("train", "--config", str(config), "--timesteps", str(target))  # in-process
    assert result.exit_code == 0, result.stderr
    assert f"Resuming run 'default' from {newest.name}" in result.stderr
    # The resumed run's updates carry on from the checkpoint (rollout: 64 steps × 2 envs),
    # not from 0 and not from where the killed run had got to (its rows past the checkpoint
    # are set aside at the resume, however far it got before the kill).
    resumed = [int(r["timesteps"]) for r in metrics_rows(home) if int(r["timesteps"]) > at]
    assert resumed == list(range(at + 128, target + 1, 128))
    assert read_status(home)["last_checkpoint_timesteps"] == target


# The power goes out while the second checkpoint is written: as its second file reaches the
# disk (whatever the files are, a writer that means them to survive fsyncs them). A
# checkpoint that is not written aside, or that writes meta.json before the rest, shows.
CRASH_IN_SECOND_SAVE = """
import os, sys

checkpoints, real_fsync, files = sys.argv.pop(1), os.fsync, {}

def fsync(fd):
    real_fsync(fd)
    path = os.readlink(f"/proc/self/fd/{fd}")
    if path.startswith(checkpoints) and os.path.isfile(path):
        files.setdefault(os.path.dirname(path), set()).add(os.path.basename(path))
        if len(files) == 2 and len(list(files.values())[1]) == 2:
            os._exit(86)

os.fsync = fsync
from perfmode.cli import main
sys.argv = ["perfmode", *sys.argv[1:]]
main()
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_a_crash_in_the_middle_of_a_save_leaves_no_checkpoint_that_looks_whole(
    cli, home: Home, tmp_path
) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"checkpoint_freq": 256})
    args = ["train", "--config", str(config), "--home", str(home.root), "--timesteps"]
    folder = home.checkpoints_dir()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_IN_SECOND_SAVE, str(folder), *args, "1024"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert crashed.returncode == 86, f"the injected crash did not happen:\n{crashed.stderr}"
    assert [p.name for p in list_checkpoints(folder)] == ["step_0000000256"]
    # meta.json marks a whole checkpoint: no other folder has one.
    assert [p.name for p in folder.iterdir() if (p / "meta.json").exists()] == ["step_0000000256"]
    resumed = cli("train", "--config", str(config), "--timesteps", "768")  # in-process
    assert resumed.exit_code == 0, resumed.stderr
    assert "Resuming run 'default' from step_0000000256" in resumed.stderr
    assert list_checkpoints(folder)[0].name == "step_0000000768"
