"""Threads by measurement: the chooser's decisions, and the load sensor against a real program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from perfmode.governor.load import LoadReading, LoadSensor
from perfmode.governor.threads import ThreadChooser, candidates_for


def feed(chooser: ThreadChooser, timing: dict[int, tuple[float, float]], free: int, cycles: int):
    """Run ``cycles`` PPO cycles whose (rollout, update) seconds depend on the thread count."""
    plans = []
    for _ in range(cycles):
        n_r, n_u = chooser.threads("rollout"), chooser.threads("update")
        plan = chooser.on_cycle(timing[n_r][0], timing[n_u][1], free)
        if plan is not None:
            plans.append(plan)
    return plans


def test_candidates_are_powers_of_two_up_to_the_free_cores() -> None:
    assert candidates_for(1) == [1]
    assert candidates_for(2) == [1, 2]
    assert candidates_for(6) == [1, 2, 4, 6]
    assert candidates_for(8) == [1, 2, 4, 8]


def test_a_small_model_settles_on_one_thread_when_two_are_slower() -> None:
    chooser = ThreadChooser()
    feed(chooser, {1: (0.24, 0.28), 2: (0.37, 0.42)}, free=2, cycles=8)
    assert chooser.state == "measured"
    assert (chooser.plan.rollout, chooser.plan.update) == (1, 1)
    assert "rollout 1: 0.24 s, 2: 0.37 s" in chooser.plan.reason


def test_each_phase_gets_its_own_fastest_count() -> None:
    chooser = ThreadChooser()
    # A big update gains from threads, the rollout (one small forward per step) does not.
    feed(chooser, {1: (1.0, 4.0), 2: (1.1, 2.2), 4: (1.3, 1.2)}, free=4, cycles=12)
    assert (chooser.plan.rollout, chooser.plan.update) == (1, 4)


def test_within_five_percent_the_smaller_count_wins() -> None:
    chooser = ThreadChooser()
    feed(chooser, {1: (1.00, 1.00), 2: (0.97, 0.98)}, free=2, cycles=8)
    assert (chooser.plan.rollout, chooser.plan.update) == (1, 1)


def test_busy_cores_cap_the_threads_at_once_and_free_ones_bring_a_new_trial() -> None:
    chooser = ThreadChooser()
    timing = {1: (4.0, 4.0), 2: (2.0, 2.0), 4: (1.0, 1.0)}
    feed(chooser, timing, free=4, cycles=12)
    assert chooser.plan.rollout == 4
    # Another program takes three cores: down to one thread on the next load reading.
    plan = chooser.on_load(1)
    assert plan is not None and (plan.rollout, plan.update) == (1, 1)
    assert "leave 1 core free" in plan.reason
    # It stays there while the load lasts...
    assert feed(chooser, timing, free=1, cycles=30) == []
    # ...and tries again once the cores have been free for a while.
    plans = feed(chooser, timing, free=4, cycles=40)
    assert plans and chooser.plan.rollout == 4


def test_a_trial_never_uses_more_threads_than_are_free() -> None:
    chooser = ThreadChooser()
    used = []
    for _ in range(20):
        used.append(chooser.threads("update"))
        chooser.on_cycle(1.0, 1.0, free=2 if len(used) > 3 else 8)
        chooser.on_load(2 if len(used) > 3 else 8)
    assert max(used[5:]) <= 2


def test_free_cores_round_to_the_nearest_whole_core() -> None:
    assert LoadReading(0.0, 1.0, 2).free_cores == 2
    assert LoadReading(0.3, 1.0, 2).free_cores == 2
    assert LoadReading(0.98, 1.0, 2).free_cores == 1
    assert LoadReading(2.0, 1.0, 2).free_cores == 1  # never below one


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc through psutil")
def _detached_burner() -> int:
    """A process spinning a core that is no child of ours (children count as our own work,
    e.g. subprocess envs); the caller kills it."""
    return int(
        subprocess.check_output(
            ["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
            text=True,
        )
    )


def test_load_sensor_sees_another_program_but_not_itself() -> None:
    import psutil

    sensor = LoadSensor(interval=0.5)
    # This process spins: its own time must count as its own, not as other programs' load.
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < 1.2:
        pass
    own = sensor.poll()
    spun = (time.process_time() - cpu0) / (time.monotonic() - t0)
    assert own is not None and abs(own.own_cores - spun) < 0.15, (own, spun)
    # Another program.
    pid = _detached_burner()
    try:
        burner = psutil.Process(pid)
        time.sleep(0.6)
        sensor.poll()
        before = sum(burner.cpu_times()[:2])
        time.sleep(1.5)
        reading = sensor.poll()
        burned = (sum(burner.cpu_times()[:2]) - before) / 1.5
    finally:
        os.kill(pid, signal.SIGKILL)
    # On a busy machine the burner gets less than a core; whatever it got must show.
    assert reading is not None and reading.foreign_cores >= 0.8 * burned, (reading, burned)
    assert reading.own_cores < 0.15, reading


def test_another_trainers_cpu_is_reported_apart_from_other_programs() -> None:
    import psutil

    # A process that is no child of ours and that the sensor is told is a perfmode trainer.
    pid = _detached_burner()
    try:
        trainer = psutil.Process(pid)
        time.sleep(0.3)  # already running when the sensor starts: its CPU so far is a baseline
        sensor = LoadSensor(interval=0.5, trainers=lambda: [pid, os.getpid()])
        time.sleep(0.6)
        sensor.poll()
        before = sum(trainer.cpu_times()[:2])
        time.sleep(1.5)
        reading = sensor.poll()
        burned = (sum(trainer.cpu_times()[:2]) - before) / 1.5
    finally:
        os.kill(pid, signal.SIGKILL)
    assert reading is not None
    # It still takes a core (the thread choice counts it), but it is no one using the machine.
    assert reading.foreign_cores >= 0.8 * burned, (reading, burned)
    assert abs(reading.trainer_cores - burned) < 0.15, (reading, burned)
    assert reading.program_cores < reading.foreign_cores - 0.6 * burned, reading


def test_status_says_warming_up_until_a_cycle_is_timed() -> None:
    chooser = ThreadChooser()
    assert chooser.state == "warming up"
    chooser.on_cycle(1.0, 1.0, free=None)  # no load reading yet: still nothing decided
    assert chooser.state == "warming up"
    chooser.on_cycle(1.0, 1.0, free=2)
    assert chooser.state == "trying"
    feed(chooser, {1: (1.0, 1.0), 2: (2.0, 2.0)}, free=2, cycles=4)
    assert chooser.state == "measured"
