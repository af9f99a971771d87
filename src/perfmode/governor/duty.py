"""The duty cycle: the trainer held to a share of the time (of the CPU, or on CUDA the GPU)."""

from __future__ import annotations

import time
from collections.abc import Callable


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
    ) -> None:
        self.share = share
        self.slot = slot
        self._clock, self._settle, self._wall, self._sleep = clock, settle, wall, sleep
        self._start()

    def _start(self) -> None:
        self._wall0 = self._wall()
        self._busy0 = self._clock()

    def set_share(self, share: float) -> None:
        self.share = share
        self._start()

    def tick(self, now: float) -> None:
        """``now``: the ``wall`` clock's time."""
        if self.share >= 1.0:
            return
        busy = self._clock() - self._busy0
        if busy >= self.share * self.slot:
            if self._settle is not None:
                self._settle()
                now = self._wall()
                busy = self._clock() - self._busy0
            pause = busy / self.share - (now - self._wall0)
            if pause > 0:
                self._sleep(pause)
            self._start()
