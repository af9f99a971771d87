"""Progress while training: a bar on a terminal, plain lines in a log, an ETA in status.

The plain lines of a real run (stderr not a terminal) are checked with the first run, in
tests/test_first_run.py.
"""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from perfmode.base.clock import format_time, parse_time, utc_now
from perfmode.base.home import Home
from perfmode.cli.mode import status_lines
from perfmode.status.model import ProgressSection
from perfmode.status.progressbar import LINE_EVERY_S, TrainProgress
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import log_text, read_status, start_trainer, write_config

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lines() -> list[str]:
    """Progress lines as the trainer logs them."""
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    logger = logging.getLogger("perfmode.train")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield got
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_plain_lines_every_tenth_of_the_run_with_speed_mode_and_eta(lines) -> None:
    clock = Clock()
    p = TrainProgress(1_000_000, 0, clock=clock)
    for _ in range(1000):  # 1,000 steps a second, fed ten times a second
        clock.t += 0.1
        p.update(p.steps + 100, "quiet")
    # 900,000 steps left at 1,000/s: 15 minutes.
    assert lines == ["⏳ 100,000 / 1,000,000 steps (10.0%), 1,000 steps/s, quiet, ETA 15 min"]
    while p.steps < 1_000_000:
        clock.t += 0.1
        p.update(p.steps + 100, "performance")
    # One line per tenth, none at 100% (the run's own last line says it finished).
    assert [line.split(" / ")[0] for line in lines] == [
        f"⏳ {n:,}" for n in range(100_000, 1_000_000, 100_000)
    ]
    assert all("performance" in line for line in lines[1:])


def test_a_slow_run_still_says_something_every_few_minutes(lines) -> None:
    clock = Clock()
    p = TrainProgress(10_000_000, 2_000_000, clock=clock)
    for _ in range(3):
        clock.t += LINE_EVERY_S / 2
        p.update(p.steps + 1000, "quiet")
    assert len(lines) == 1 and "2,002,000 / 10,000,000 steps (20.0%)" in lines[0]


def test_speed_and_eta_follow_the_last_minute_and_go_to_status(lines) -> None:
    clock = Clock()
    p = TrainProgress(1_000_000, 0, clock=clock)
    fields = ProgressSection(eta_s=1.0, eta_at="x")
    p.report(fields)
    assert p.speed() is None and (fields.eta_s, fields.eta_at) == (None, None)
    for _ in range(1200):  # two minutes at 500 steps/s...
        clock.t += 0.1
        p.update(p.steps + 50, "quiet")
    for _ in range(600):  # ...then one at 2,000 steps/s: the speed is the last minute's
        clock.t += 0.1
        p.update(p.steps + 200, "performance")
    assert p.speed() == pytest.approx(2000, rel=0.01)
    p.report(fields)
    assert fields.eta_s == pytest.approx((1_000_000 - 180_000) / 2000, rel=0.01)
    eta_at = parse_time(fields.eta_at)
    assert eta_at is not None and abs((eta_at - utc_now()).total_seconds() - fields.eta_s) < 60


def test_status_shows_the_eta() -> None:
    eta = format_time(utc_now() + timedelta(hours=2, seconds=30))
    report = {
        "requested_mode": "quiet",
        "changed_by": "cli",
        "changed_at": format_time(utc_now()),
        "settings_ok": True,
        "settings_problem": None,
        "settings_file": "/h/settings.json",
        "trainer": {
            "pid": 1,
            "run": "default",
            "applied_mode": "quiet",
            "timesteps": 100_000,
            "total_timesteps": 1_000_000,
            "fps": 125.0,
            "eta_at": eta,
            "eta_s": 7200.0,
        },
        "runs": [],
        "schedule": None,
    }
    shown = dict(status_lines(report))
    assert shown["ETA"].endswith("(in 2.0 h, at the current speed)")


def _run_on_a_terminal(args: list[str], timeout: float = 300) -> tuple[int, str]:
    """The command with stdout and stderr on a pseudo-terminal, as in an interactive shell."""
    master, slave = pty.openpty()
    env = {"COLUMNS": "120", **os.environ, "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfmode", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, out.decode("utf-8", "replace")


def test_on_a_terminal_a_bar_with_the_log_lines_above_it(home: Home, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 2048})
    code, screen = _run_on_a_terminal(["train", "--config", str(config), "--home", str(home.root)])
    assert code == 0, screen
    plain = ANSI.sub("", screen)
    # The bar: redrawn in place (carriage returns), with steps, percent, speed, mode and ETA.
    assert "\r" in screen
    bar = re.search(r"quiet\s+\S+ ([\d,]+) / 2,048 steps\s+\d+% ([\d,]+|\?) steps/s ETA \S+", plain)
    assert bar, plain
    assert "2,048 / 2,048 steps" in plain and "100%" in plain
    # Log lines are printed above it, whole, and the periodic lines stay out of the way...
    assert re.search(r"[\r\n]💾 Checkpoint at 256 steps: \S+\r?\n", plain)
    assert plain.rstrip().endswith(str(home.checkpoints_dir() / "step_0000002048"))
    assert "⏳" not in plain
    # ...but train.log has them, for whoever reads it later.
    assert "⏳ " in log_text(home) and "steps/s, quiet, ETA" in log_text(home)


def test_status_of_a_running_trainer_has_its_eta(home: Home, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    proc = start_trainer(home, config)
    try:
        wait_for("an ETA", lambda: read_status(home).get("eta_at"), timeout=300, proc=proc)
        status = read_status(home)
        assert status["eta_s"] > 0
        shown = run_perfmode("status", "--home", str(home.root))
        assert shown.returncode == 0, shown.stderr
        eta = [line for line in shown.stdout.splitlines() if line.startswith("ETA")]
        assert len(eta) == 1 and "at the current speed" in eta[0], shown.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert read_status(home)["eta_at"] is None  # a stopped run has no ETA
