"""Input idle on Linux from a real X server (Xvfb) and real input (xdotool)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from perfmode.base.modes import Mode
from perfmode.config.schema import AutoConfig
from perfmode.governor.effective import AutoReadings, AutoState, resolve_auto
from perfmode.governor.idle import UNKNOWN, IdleSensor
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not (shutil.which("Xvfb") and shutil.which("xdotool")),
    reason="needs a real X server and input: apt-get install xvfb xdotool",
)


@pytest.fixture
def display(monkeypatch):
    number = next(n for n in range(90 + os.getpid() % 100, 400) if not _taken(n))
    xvfb = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            "Xvfb to accept clients",
            lambda: os.path.exists(f"/tmp/.X11-unix/X{number}") or xvfb.poll() is not None,
            timeout=60,
        )
        assert xvfb.poll() is None, "Xvfb did not start"
        monkeypatch.setenv("DISPLAY", f":{number}")
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=30)


def _taken(n: int) -> bool:
    return os.path.exists(f"/tmp/.X{n}-lock") or os.path.exists(f"/tmp/.X11-unix/X{n}")


def test_idle_time_counts_from_the_last_real_input_and_drives_auto(display) -> None:
    sensor = IdleSensor(interval=0)
    wait_for("an idle reading", lambda: (sensor.poll() or 0) >= 1.5, timeout=60)
    assert sensor.source_name == "x11" and sensor.unknown is None

    subprocess.run(["xdotool", "mousemove", "40", "30"], check=True, env=os.environ)
    fresh = sensor.poll()
    assert fresh is not None and fresh < 1.0, fresh

    cfg = AutoConfig(idle_after=10, resume_after=1)
    mode, reason, _ = resolve_auto(AutoReadings(idle_s=fresh), cfg, AutoState(), time.monotonic())
    assert mode is Mode.QUIET and reason.startswith("auto: input")

    subprocess.run(["xdotool", "key", "space"], check=True, env=os.environ)
    assert (sensor.poll() or 99) < 1.0


def test_no_display_is_said_once_and_auto_decides_on_cpu(monkeypatch) -> None:
    for var in ("DISPLAY", "XDG_SESSION_ID"):
        monkeypatch.delenv(var, raising=False)
    sensor = IdleSensor(interval=0)
    assert sensor.poll() is None and sensor.unknown == UNKNOWN
    mode, _, _ = resolve_auto(
        AutoReadings(idle_s=None, foreign_cores=0.01), AutoConfig(), AutoState(), 0
    )
    assert mode is Mode.PERFORMANCE
