"""Each knob of a mode, read back from a real trainer process.

Two trainers serve the module (starting one costs seconds): one whose CPU use is measured,
and one with long updates, a lowered priority and a slow poll. Tests set the mode they need;
none relies on what an earlier one left.

CPU figures come from the trainer's own CPU time (psutil) over a few seconds. A busy machine
can only lower what the trainer gets, so quiet's cap is an upper bound, and performance is
compared with a plain busy loop measured over the same seconds, not with a fixed figure.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from perfmode.base.home import Home
from perfmode.settings.store import SettingsStore
from tests.conftest import wait_for
from tests.trainkit import mode_lines, read_status, start_trainer, stop_trainer, write_config

MEASURE_S = 3.0


@dataclass
class Trainer:
    home: Home
    proc: subprocess.Popen[str]

    def set_mode(self, mode: str) -> float:
        """Write the mode as ``perfmode set`` does; the file's mtime (the write's time)."""
        SettingsStore(self.home.settings).set_mode(mode, changed_by="cli")
        return self.home.settings.stat().st_mtime

    def switch(self, mode: str) -> tuple[float, float]:
        """Switch and wait for the trainer's log line: (written at, applied at), epoch seconds."""
        seen = len(mode_lines(self.home))
        written = self.set_mode(mode)
        applied, applied_mode = wait_for(
            f"the trainer to log the switch to {mode}",
            lambda: mode_lines(self.home)[seen:],
            proc=self.proc,
        )[-1]
        assert applied_mode == mode
        return written, applied.timestamp()

    def ensure(self, mode: str) -> None:
        lines = mode_lines(self.home)
        if not lines or lines[-1][1] != mode:
            self.switch(mode)

    def rapid_switches(self, n: int) -> tuple[list[float], list[float]]:
        """``n`` switches, each written as soon as the one before is applied.

        A switch written right after a poll waits a whole poll interval, so each latency
        shows the interval, and applied switches are at least one interval apart.
        Returns (latencies, gaps between applied switches), in seconds.
        """
        mode = mode_lines(self.home)[-1][1]
        latencies, applied = [], []
        for _ in range(n):
            mode = "quiet" if mode == "performance" else "performance"
            written, at = self.switch(mode)
            latencies.append(at - written)
            applied.append(at)
        return latencies, [b - a for a, b in itertools.pairwise(applied)]


def _start(home: Home, config: Path) -> Iterator[Trainer]:
    home.root.mkdir(parents=True)
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    proc = start_trainer(home, config)
    try:
        wait_for(
            "the trainer to train",
            lambda: read_status(home).get("timesteps", 0) > 0 and mode_lines(home),
            proc=proc,
        )
        yield Trainer(home, proc)
    finally:
        stop_trainer(proc)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    """One torch thread in both modes (TINY); quiet computes a tenth of the time; default poll."""
    root = tmp_path_factory.mktemp("measured")
    config = write_config(
        root / "c.yaml",
        training={"total_timesteps": 10_000_000, "checkpoint_freq": 10_000_000, "nice": 0},
        modes={"quiet": {"cpu_share": 0.1}},
    )
    yield from _start(Home(root / "home"), config)


@pytest.fixture(scope="module")
def slow_poll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    """Updates of ~1,600 minibatches (the rollout is ~1% of the time), nice 7, poll 0.5 s;
    quiet runs 1 torch thread, performance 2."""
    root = tmp_path_factory.mktemp("slowpoll")
    config = write_config(
        root / "c.yaml",
        ppo={"batch_size": 2, "n_epochs": 25},
        training={
            "total_timesteps": 10_000_000,
            "checkpoint_freq": 10_000_000,
            "nice": 7,
            "poll_interval": 0.5,
        },
        modes={
            "quiet": {"cpu_share": 1.0},
            "performance": {"batch_size_multiplier": 1.0, "torch_threads": 2},
        },
    )
    yield from _start(Home(root / "home"), config)


def cpu_cores(*procs: psutil.Process) -> list[float]:
    """CPU cores each process used over the next MEASURE_S seconds."""

    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    start = [used(p) for p in procs], time.monotonic()
    time.sleep(MEASURE_S)  # a measurement window, not a wait for an event
    wall = time.monotonic() - start[1]
    return [(used(p) - c) / wall for p, c in zip(procs, start[0], strict=True)]


def test_quiet_takes_its_cpu_share_and_performance_takes_what_it_gets(measured: Trainer) -> None:
    trainer = psutil.Process(measured.proc.pid)
    measured.ensure("quiet")
    (quiet,) = cpu_cores(trainer)
    assert 0.02 <= quiet <= 0.2, f"quiet (cpu_share 0.1) used {quiet:.2f} cores"

    measured.switch("performance")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        perf, spin = cpu_cores(trainer, psutil.Process(spinner.pid))
    finally:
        spinner.kill()
        spinner.wait()
    assert perf >= 0.5 * spin, f"performance used {perf:.2f} cores, a busy loop {spin:.2f}"
    assert perf > quiet


def test_a_switch_is_applied_within_a_second_at_the_default_poll(measured: Trainer) -> None:
    latencies, gaps = measured.rapid_switches(5)
    # README: "looks at the file every 0.2 s" and `perfmode set` is "applied within a second".
    assert statistics.median(latencies) < 1.0, latencies
    assert statistics.median(gaps) >= 0.15, gaps


def test_the_trainer_lowers_its_own_priority_and_only_its_own(slow_poll: Trainer) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert psutil.Process(slow_poll.proc.pid).nice() == max(own, 7)  # a level, not a step
    assert psutil.Process().nice() == own


def test_a_switch_lands_in_the_middle_of_a_long_update(slow_poll: Trainer) -> None:
    """Ticks come from the optimizer's steps too: a switch does not wait for the update's end."""
    profiles = {"quiet": (1, 1.0), "performance": (2, 1.0)}  # (torch threads, CPU share)
    during = []
    mode = read_status(slow_poll.home).get("applied_mode", "quiet")
    for _ in range(8):
        mode = "quiet" if mode == "performance" else "performance"
        status = _switch_and_read_status(slow_poll, mode)
        assert (status["torch_threads"], status["cpu_share"]) == profiles[mode]
        during.append(status["applied_during"])
        if during[-1] == "update":
            break
    assert during[-1] == "update", during


def _switch_and_read_status(trainer: Trainer, mode: str) -> dict:
    before = read_status(trainer.home).get("applied_at")
    trainer.set_mode(mode)

    def applied() -> dict | None:
        s = read_status(trainer.home)
        return s if s.get("applied_mode") == mode and s.get("applied_at") != before else None

    return wait_for(f"status.json to show {mode} applied", applied, proc=trainer.proc)


def test_the_configured_poll_interval_is_honoured(slow_poll: Trainer) -> None:
    latencies, gaps = slow_poll.rapid_switches(4)
    assert statistics.median(gaps) >= 0.45, gaps  # poll_interval: 0.5
    assert statistics.median(latencies) < 1.5, latencies
