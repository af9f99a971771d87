"""The home's budget with real trainers: quiet shared, performance's extra runs wait, and
what a run learns does not depend on the runs it shared the home with, or on having shared
it at all.

The trainers are pinned to one CPU, so the machine they see has one core whatever else
runs on it: performance serves exactly one run.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime

import psutil
import torch

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from perfmode.checkpoint.io import read_weights
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import (
    log_text,
    read_status,
    start_trainer,
    stop_trainer,
    trainer_output,
    write_config,
)


def _pinned(proc: psutil.Popen | object) -> None:
    psutil.Process(proc.pid).cpu_affinity([psutil.Process().cpu_affinity()[0]])


def _log_time(home: Home, run: str, text: str) -> datetime:
    for line in log_text(home, run).splitlines():
        if text in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    raise AssertionError(f"no {text!r} in {run}'s log:\n{log_text(home, run)}")


def test_quiet_shares_the_home_performance_makes_the_second_run_wait_learning_unchanged(
    home: Home, tmp_path
) -> None:
    config = write_config(
        tmp_path / "tiny.yaml",
        training={"total_timesteps": 2048, "checkpoint_freq": 512, "poll_interval": 0.05},
    )
    # Paused until both are up, so that both train from the start.
    assert run_perfmode("set", "paused", "--home", str(home.root)).returncode == 0
    procs = []
    try:
        for run in ("a", "b"):
            proc = start_trainer(home, config, "--run", run, "--seed", "5")
            _pinned(proc)
            procs.append(proc)
            time.sleep(0.5)  # b's process starts after a's: its place in line is second
        for run, proc in zip("ab", procs, strict=True):
            wait_for(
                f"{run} up", lambda r=run: read_status(home, r).get("state") == "paused", 120, proc
            )
        assert run_perfmode("set", "quiet", "--home", str(home.root)).returncode == 0

        def shares() -> list[float | None]:
            return [read_status(home, r).get("budget", {}).get("cpu_share") for r in "ab"]

        # Quiet's 0.5 cores are the home's: 0.25 each.
        wait_for("quiet shared by two", lambda: shares() == [0.25, 0.25], 30)
        wait_for(
            "both training", lambda: all(read_status(home, r).get("timesteps") for r in "ab"), 60
        )
        assert run_perfmode("set", "performance", "--home", str(home.root)).returncode == 0
        wait_for(
            "b waiting", lambda: read_status(home, "b").get("state") == "waiting", 30, procs[1]
        )
        b = read_status(home, "b")
        assert b["budget"]["reason"] == "waiting: 1 core free serves 1 run; 2nd in line", b
        steps = b["timesteps"]
        assert 0 < steps < 2048
        # Waiting is asleep: about no CPU.
        cpu = psutil.Process(procs[1].pid)
        cpu.cpu_percent()
        time.sleep(1.0)
        if read_status(home, "b").get("state") == "waiting":
            assert cpu.cpu_percent() < 10
        for proc in procs:
            proc.wait(timeout=180)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], [trainer_output(p) for p in procs]
    # b started again as soon as a was done (a core freed), from where it had waited.
    done = _log_time(home, "a", "✅ Finished")
    resumed = _log_time(home, "b", "▶️  Home budget")
    assert -1 < (resumed - done).total_seconds() < 5, (done, resumed)
    # Same seed, same config: the same weights, whoever shared the home and when, and the
    # same as the seed trained alone in a home of its own (one torch thread in every mode).
    alone = Home(tmp_path / "alone")
    alone.root.mkdir()
    alone.settings.write_text('{"performance_mode": "performance"}')
    solo = start_trainer(alone, config, "--seed", "5")
    try:
        assert solo.wait(timeout=180) == 0, trainer_output(solo)
    finally:
        stop_trainer(solo)
    wa, wb, walone = (
        read_weights(list_checkpoints(h.checkpoints_dir(r))[0] / "policy.pth")
        for h, r in ((home, "a"), (home, "b"), (alone, "default"))
    )
    assert wa.keys() == wb.keys() == walone.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
        assert torch.equal(wa[key], walone[key]), key
