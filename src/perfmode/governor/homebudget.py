"""One trainer's side of the home's budget: its share now, and when to start waiting.

The governor polls :meth:`HomeBudget.poll` with every settings poll; the share's
``cpu_share`` goes to the duty cycle at once, and a ``waiting`` share is waited out at the
next safe point (:meth:`perfmode.governor.governor.Governor.wait_for_turn`).

In performance a run that trains starts waiting only when the verdict has held for
``WAIT_AFTER_S``: a trainer that has just started uses a core for seconds before its
status file says it is one of the home's runs, and its start must not make the others stop
and go. A waiting run starts again at once, and a mode change applies at once (the moment
quiet begins, the home drops to quiet's total).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

import psutil

from perfmode.base.modes import Mode
from perfmode.governor.budget import Peer, Share, decide_share
from perfmode.governor.load import LoadReading
from perfmode.status.model import BudgetStatus, TrainerStatus

log = logging.getLogger("perfmode.train")

WAIT_AFTER_S = 4.0
"""How long performance's "does not fit" must hold before a training run waits."""


def home_free_cores(reading: LoadReading | None, cores: int) -> int:
    """Cores that other programs than the home's trainers leave free (all before a reading)."""
    if reading is None:
        return cores
    return max(1, min(cores, math.floor(cores - reading.program_cores + 0.5)))


class HomeBudget:
    def __init__(
        self,
        run: str,
        peers: Callable[[], list[Peer]],
        cores_wanted: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.pid = os.getpid()
        self.started = psutil.Process(self.pid).create_time()
        self._peers = peers
        self._cores_wanted = cores_wanted
        self._clock = clock
        self._mode: Mode | None = None
        self._misfit_since: float | None = None
        self.share = Share("training", 1.0, 1, 1, 1, "alone in the home")

    def me(self) -> Peer:
        return Peer(self.run, self.pid, self.started, max(1, self._cores_wanted()))

    def poll(self, mode: Mode, profile_share: float, free_cores: int) -> bool:
        """A new look at the home; True when this run's share or state changed."""
        me = self.me()
        try:
            others = [p for p in self._peers() if p.run != self.run]
        except Exception:  # a home we cannot list this time: keep the last view
            return False
        new = decide_share(
            self.run, [me, *others], mode, profile_share=profile_share, free_cores=free_cores
        )
        now = self._clock()
        mode_changed, self._mode = mode is not self._mode, mode
        if new.waiting and not self.share.waiting and not mode_changed:
            if self._misfit_since is None:
                self._misfit_since = now
            if now - self._misfit_since < WAIT_AFTER_S:
                return False  # not yet: keep training on the last share
        if not new.waiting:
            self._misfit_since = None
        old, self.share = self.share, new
        if new.state != old.state:
            icon = "⏳" if new.waiting else "▶️ "
            log.info("%s Home budget: %s", icon, new.reason)
        return (new.state, new.cpu_share) != (old.state, old.cpu_share)

    def report(self, into: TrainerStatus) -> None:
        """Its parts of the trainer's status: who holds the share, and the share."""
        share = self.share
        into.budget = BudgetStatus(
            state=share.state,
            cpu_share=round(share.cpu_share, 4),
            cores=self.me().cores,
            position=share.position,
            runs=share.runs,
            served=share.served,
            reason=share.reason,
        )
