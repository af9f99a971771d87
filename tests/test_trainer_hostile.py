"""A real trainer against what a hostile or clumsy user can put in its home, and signals."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import log_text, read_status, start_trainer, trainer_output, write_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, SIGSTOP: POSIX only")


def _status(home: Home) -> dict:
    proc = run_perfmode("status", "--json", "--home", str(home.root), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _goes_on(home: Home, proc, seen: str) -> None:
    """The trainer saw what was planted (its status names ``seen``), then trained on."""
    wait_for(
        f"the trainer to see {seen}",
        lambda: seen in (read_status(home).get("settings_problem") or ""),
        timeout=180,
        proc=proc,
    )
    steps = read_status(home).get("timesteps") or 0
    wait_for(
        f"training to go on past {seen}",
        lambda: (read_status(home).get("timesteps") or 0) > steps + 256,
        timeout=180,
        proc=proc,
    )


def test_the_trainer_survives_any_settings_file_and_status_tells_a_stopped_one(
    home: Home, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    proc = start_trainer(home, config)
    try:
        wait_for("training", lambda: (read_status(home).get("timesteps") or 0) > 0, 180, proc)
        rss = psutil.Process(proc.pid).memory_info().rss

        # A FIFO behind a symlink: opening it for reading would block for ever.
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        home.settings.symlink_to(fifo)
        _goes_on(home, proc, "FIFO")
        # A symlink to /dev/zero: reading it would grow the trainer without end.
        home.settings.unlink()
        home.settings.symlink_to("/dev/zero")
        _goes_on(home, proc, "character device")
        # Valid JSON that kills a naive reader: nested 100,000 deep, a 5,000-digit number.
        home.settings.unlink()
        for raw, seen in (
            (b"[" * 100_000, "nested too deep"),
            (b'{"performance_mode": ' + b"7" * 5000 + b"}", "too many digits"),
        ):
            home.settings.write_bytes(raw)
            _goes_on(home, proc, seen)
        assert psutil.Process(proc.pid).memory_info().rss < rss + 200 * 2**20
        log = log_text(home)
        for seen in ("FIFO", "character device", "nested too deep", "too many digits"):
            assert log.count(seen) == 1, (seen, log)

        # SIGSTOP: the process lives, holds its run, and does nothing.
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(
            "the stop to show",
            lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED,
            timeout=60,
        )
        report = _status(home)
        t = report["trainer"]
        assert t is not None and t["pid"] == proc.pid
        assert (t["alive"], t["running"], t["suspended"]) == (True, False, True)
        assert t["not_responding_since"] == t["heartbeat"]
        human = run_perfmode("status", "--home", str(home.root), timeout=120).stdout
        assert "NOT RESPONDING since" in human and f"kill -CONT {proc.pid}" in human
        second = run_perfmode("train", "--config", str(config), "--home", str(home.root))
        assert second.returncode == 1 and f"pid {proc.pid}" in second.stderr

        os.kill(proc.pid, signal.SIGCONT)
        wait_for("it to respond again", lambda: _status(home)["trainer"]["running"], 180)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        out = trainer_output(proc)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


def _catches_sigterm(pid: int) -> bool:
    """Linux: whether the process has a handler for SIGTERM (its SigCgt mask)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sigterm_during_start_up_says_so_and_exits_0(home: Home, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    proc = start_trainer(home, config)
    try:
        # The command's own handler is in place: from here on the default (a silent exit
        # 143) must not be what answers. Importing torch still takes seconds.
        wait_for("the start-up handler", lambda: _catches_sigterm(proc.pid), 120, proc)
        assert not home.status_file().exists(), "training started before the test could stop it"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        out = trainer_output(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == 0, out
    assert "SIGTERM: stopped before training started; nothing to save" in out
    assert "Traceback" not in out
    assert list_checkpoints(home.checkpoints_dir()) == []


def test_a_status_or_log_file_that_cannot_be_written_does_not_stop_training(
    home: Home, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    status = home.status_file()
    (status / "in-the-way").mkdir(parents=True)  # a folder where status.json goes
    os.mkfifo(home.log_file())  # a FIFO where train.log goes: writing to it would block
    result = run_perfmode("train", "--config", str(config), "--home", str(home.root), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(f"cannot write {status}") == 1
    assert result.stderr.count(f"cannot write {home.log_file()}") == 1
    assert "Traceback" not in result.stderr
    assert "Finished: 1,024 steps" in result.stderr
    assert list_checkpoints(home.checkpoints_dir())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_at_metrics_csv_neither_blocks_nor_stops_training(home: Home, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 512})
    run_dir = home.run_dir("default")
    run_dir.mkdir(parents=True)
    os.mkfifo(home.metrics_file("default"))
    proc = run_perfmode(
        "train", "--config", str(config), "--home", str(home.root), timeout=240
    )  # a blocked open would hang here until the timeout fails the test
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("not a regular file") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list_checkpoints(home.checkpoints_dir("default"))
