"""The duty cycle's debt: CPU a run took beyond its share (its start-up) is paid back in
short sleeps, survives the home's share changes, and performance forgives it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perfmode.governor.duty import MAX_PAUSE_S, DutyCycle


def _clock(startup: float = 0.0) -> tuple[SimpleNamespace, DutyCycle]:
    """A duty cycle made after ``startup`` seconds of one whole core."""
    t = SimpleNamespace(cpu=startup, wall=startup, sleeps=[])

    def sleep(s: float) -> None:
        t.sleeps.append(s)
        t.wall += s

    duty = DutyCycle(0.25, clock=lambda: t.cpu, wall=lambda: t.wall, sleep=sleep)
    return t, duty


def _train(t: SimpleNamespace, duty: DutyCycle, seconds: float) -> None:
    """1 ms of CPU per step, uncontended, for ``seconds`` of wall time."""
    end = t.wall + seconds
    while t.wall < end:
        t.cpu += 0.001
        t.wall += 0.001
        duty.tick(t.wall)


def test_a_start_up_is_paid_back_at_the_share_in_short_sleeps() -> None:
    t, duty = _clock(startup=3.0)
    duty.charge(3.0 - 0.25 * 3.0)
    assert duty.pays_for == pytest.approx(9.0)
    _train(t, duty, 30.0)
    # Over the whole life, start-up included, the run used its share of a core.
    assert t.cpu / t.wall == pytest.approx(0.25, abs=0.01)
    assert max(t.sleeps) <= MAX_PAUSE_S
    assert duty.debt < 0.01


def test_without_the_charge_the_start_up_is_cpu_the_share_never_saw() -> None:
    t, duty = _clock(startup=3.0)
    _train(t, duty, 30.0)
    assert t.cpu / t.wall > 0.3


def test_a_new_share_below_one_keeps_the_debt_and_performance_forgives_it() -> None:
    t, duty = _clock()
    duty.charge(2.0)
    duty.set_share(0.125)  # another run joined the home
    assert duty.debt == pytest.approx(2.0)
    assert duty.pays_for == pytest.approx(16.0)
    duty.set_share(1.0)
    assert duty.debt == 0.0
    _train(t, duty, 1.0)
    assert t.sleeps == []


def test_a_long_slot_is_paid_in_parts_so_the_governor_polls_between_them() -> None:
    # A first optimizer step that takes a second (torch importing its compiler) at 0.25 of
    # a core owes 3 s of sleep: slept in parts of at most MAX_PAUSE_S, one per tick.
    t, duty = _clock()
    t.cpu += 1.0
    t.wall += 1.0
    duty.tick(t.wall)
    assert t.sleeps == [MAX_PAUSE_S]
    ticks = 1
    while duty.debt > 0:
        duty.tick(t.wall)
        ticks += 1
    assert sum(t.sleeps) == pytest.approx(3.0, abs=0.01)
    assert ticks >= 3.0 / MAX_PAUSE_S
