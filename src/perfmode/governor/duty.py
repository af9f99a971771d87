"""The duty cycle: the trainer held to a share of the time (of the CPU, or on CUDA the GPU)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("perfmode.train")

MAX_PAUSE_S = 0.25
"""The longest one sleep of the duty cycle. A longer pause (a start-up to pay back, a slow
first optimizer step) is slept in parts, one per tick, so the governor still polls between
them and a switch still takes effect within a second."""


class DutyCycle:
    """Caps the trainer at ``share`` of the time, in slots of about ``slot`` seconds.

    Ticked often (every env step and optimizer step). Once a slot's busy time reaches
    share × slot, sleep until busy / wall == share.

    On a CPU (the defaults) busy time is the process's CPU time, not wall time: time spent
    waiting for a CPU that other programs hold is not work, and counting it would make quiet
    back off twice (once through the scheduler, once here).

    On CUDA (``clock`` is wall time, ``settle`` waits for the GPU, see :mod:`perfmode.governor.gpu`)
    the GPU runs the kernels after the CPU queued them and that is no CPU time at all, so at
    the end of a slot ``settle`` first waits, asleep, for the slot's GPU work, and the slot's
    busy time is then its wall time: the GPU is held to the share, not only the CPU.

    What a slot used beyond its share, and what :meth:`charge` adds (a trainer's start-up,
    before the duty cycle existed), is a *debt* in busy seconds, paid by sleeping
    debt / share, at most ``MAX_PAUSE_S`` per tick. A new share below 1 keeps the debt (a
    run joining the home changes everyone's share, and must not wipe what they owe); an
    uncapped share (performance) forgives it.
    """

    def __init__(
        self,
        share: float = 1.0,
        slot: float = 0.1,
        *,
        clock: Callable[[], float] = time.process_time,
        settle: Callable[[], None] | None = None,
        wall: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        max_pause: float = MAX_PAUSE_S,
    ) -> None:
        self.share = share
        self.slot = slot
        self.max_pause = max_pause
        self.debt = 0.0
        self._clock, self._settle, self._wall, self._sleep = clock, settle, wall, sleep
        self._start()

    def _start(self) -> None:
        self._wall0 = self._wall()
        self._busy0 = self._clock()

    def _owed(self, now: float) -> float:
        """Busy seconds this slot used beyond its share so far."""
        return (self._clock() - self._busy0) - self.share * (now - self._wall0)

    def set_share(self, share: float) -> None:
        if share >= 1.0:
            self.debt = 0.0
        elif self.share < 1.0:
            self.debt += max(0.0, self._owed(self._wall()))
        self.share = share
        self._start()

    def charge(self, busy: float) -> None:
        """Busy seconds the duty cycle did not see (a start-up), to be paid at this share."""
        if self.share < 1.0 and busy > 0:
            self.debt += busy

    @property
    def pays_for(self) -> float:
        """Seconds of sleep the debt still takes at this share."""
        return self.debt / self.share if self.share < 1.0 else 0.0

    def tick(self, now: float) -> None:
        """``now``: the ``wall`` clock's time."""
        if self.share >= 1.0:
            return
        if self._clock() - self._busy0 >= self.share * self.slot:
            if self._settle is not None:
                self._settle()
                now = self._wall()
            self.debt += max(0.0, self._owed(now))
            self._start()
        if self.debt > 0:
            pause = min(self.pays_for, self.max_pause)
            self._sleep(pause)
            self.debt = max(0.0, self.debt - pause * self.share)
            self._start()


def charge_startup(duty: DutyCycle, cpu: float) -> None:
    """A trainer's start-up (``cpu`` seconds: torch, the data, the model, before the duty
    cycle existed) counts against the share like any other work: a capped run pays it back,
    resting start-up / share seconds, before it trains on. Otherwise every trainer's start
    (and a sweep starts one per trial) is CPU the home's budget never sees.

    All of it counts, not only what exceeded the share over the start-up's wall time: a run
    joins the home's line once its status exists, so while it started the runs in line held
    the home's whole budget (and two runs starting together would each have found the home
    empty and credited themselves the same budget)."""
    duty.charge(cpu)
    if duty.pays_for >= 1.0:
        log.info(
            "⏱️  Start-up took %.1f s of CPU; at %.0f%% of a core it is paid back by resting "
            "%.0f s before training goes on",
            cpu,
            duty.share * 100,
            duty.pays_for,
        )
