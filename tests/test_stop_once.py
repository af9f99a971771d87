"""One Ctrl-C is one stop: the trainer saves, however many copies of the signal reach it.

A terminal sends SIGINT to its whole foreground group, and a starter in it (``perfmode
hold``) passes its own copy on; which copy arrives first is the scheduler's choice, so
both orders are played out.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from perfmode.base.home import Home
from perfmode.training.stop import SAME_STOP_S, StopRequest
from tests.conftest import PERFMODE, wait_for
from tests.trainkit import read_status, write_config


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_copies_of_one_ctrl_c_are_one_stop_and_a_later_one_quits() -> None:
    clock = _Clock()
    stop = StopRequest(clock)
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        clock.now += SAME_STOP_S / 2
        os.kill(os.getpid(), signal.SIGINT)  # the starter's copy: not "quit now"
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        clock.now += SAME_STOP_S
        with pytest.raises(KeyboardInterrupt):  # a person's second Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("first", ["trainer", "hold"])
def test_ctrl_c_on_hold_around_a_trainer_saves(home: Home, tmp_path: Path, first: str) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 10_000_000})
    out = tmp_path / "out.txt"
    train = [*PERFMODE, "train", "--config", str(config), "--home", str(home.root)]
    with open(out, "w") as f:
        hold = subprocess.Popen(
            [*PERFMODE, "hold", "quiet", "--home", str(home.root), "--", *train],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a shell job: its own process group
        )
    hold.output_path = str(out)  # type: ignore[attr-defined]
    try:
        wait_for(
            "the trainer's first update",
            lambda: (read_status(home).get("timesteps") or 0) > 0,
            proc=hold,
        )
        trainer = read_status(home)["pid"]
        assert trainer in [c.pid for c in psutil.Process(hold.pid).children()]
        # The two copies of one Ctrl-C, in the order this case plays.
        order = [trainer, hold.pid] if first == "trainer" else [hold.pid, trainer]
        for pid in order:
            os.kill(pid, signal.SIGINT)
        code = hold.wait(timeout=300)
    finally:
        if hold.poll() is None:
            os.killpg(hold.pid, signal.SIGKILL)
            hold.wait()
    text = out.read_text()
    assert code == 0, text
    assert "Stopped at" in text and "checkpoint: " in text, text
    assert read_status(home)["state"] == "stopped"
    assert any(home.checkpoints_dir().iterdir())
