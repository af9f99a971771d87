"""How many torch threads to train with, chosen by measurement instead of "all cores".

A small MLP gains little or nothing from a second intra-op thread, and loses badly when a
core is contended: a parallel region runs at the speed of its slowest thread, so when the
(niced) trainer's second thread loses its core to another program, every update waits for
it while the first thread spins. Measured on a 2-core machine with one other busy program:
157 steps/s with 2 threads, 3,300 with 1 (default config, 8 envs, nice 5). So when a
mode's profile says ``torch_threads: auto``, the :class:`ThreadChooser`

1. tries thread counts (1, 2, 4, ... up to the free cores), a couple of PPO cycles each,
   timing the rollout and the update separately;
2. settles on the fastest count *per phase* (within 5 % it takes the smaller one: fewer
   threads leave more of the machine to its owner);
3. never uses more threads than the cores other programs leave free: when they take more,
   it drops at once; when cores come free again for a while, it tries again.

Numbers of threads below the explicit profile override are the governor's business; this
module only decides and explains.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from perfmode.governor.load import LoadSensor
from perfmode.status.model import ThreadsStatus

log = logging.getLogger("perfmode.train")

TRIAL_CYCLES = 2
"""PPO cycles (rollout + update) timed per candidate; the fastest counts (noise only adds)."""
TIE = 0.05
"""A larger thread count must be this much faster to be chosen."""
RETRY_AFTER_CYCLES = 20
"""Cycles with more free cores than the last trial could use before trying again."""


@dataclass(frozen=True)
class ThreadPlan:
    rollout: int
    update: int
    reason: str

    def describe(self) -> str:
        if self.rollout == self.update:
            return f"{self.rollout}"
        return f"{self.rollout} rollout / {self.update} update"


@dataclass
class _Trial:
    candidates: list[int]
    free: int
    index: int = 0
    done_cycles: int = 0
    rollout: dict[int, float] = field(default_factory=dict)
    update: dict[int, float] = field(default_factory=dict)

    @property
    def current(self) -> int:
        return self.candidates[self.index]


def candidates_for(free: int) -> list[int]:
    """1, 2, 4, ... below ``free``, and ``free`` itself."""
    out, n = [], 1
    while n < free:
        out.append(n)
        n *= 2
    out.append(max(1, free))
    return out


def _pick(times: dict[int, float]) -> int:
    best = min(times.values())
    return min(n for n, t in times.items() if t <= best * (1 + TIE))


def _seconds(times: dict[int, float]) -> str:
    return ", ".join(f"{n}: {t:.2f} s" for n, t in sorted(times.items()) if t != float("inf"))


class ThreadChooser:
    """Decides the thread counts of the rollout and the update, one PPO cycle at a time."""

    def __init__(self) -> None:
        self.plan = ThreadPlan(1, 1, "warming up: 1 thread until the first cycle is timed")
        self._trial: _Trial | None = None
        self._tried_up_to = 0
        self._roomy_cycles = 0
        self._warm = False

    @property
    def state(self) -> str:
        """'warming up' (nothing timed yet), 'trying' or 'measured'."""
        if not self._warm:
            return "warming up"
        return "trying" if self._trial is not None else "measured"

    def threads(self, phase: str) -> int:
        if self._trial is not None:
            return self._trial.current
        return self.plan.rollout if phase == "rollout" else self.plan.update

    def on_cycle(self, rollout_s: float, update_s: float, free: int | None) -> ThreadPlan | None:
        """One cycle's timings; a new plan when the decision changed, else None.

        ``free`` is None until the load sensor has its first reading: no trial starts
        before it is known how many cores other programs leave free.
        """
        if free is None:
            return None
        if not self._warm:
            # The first cycle pays for imports and allocations; it measures nothing.
            self._warm = True
            return self._start_trial(free)
        trial = self._trial
        if trial is not None:
            n = trial.current
            trial.rollout[n] = min(trial.rollout.get(n, float("inf")), rollout_s)
            trial.update[n] = min(trial.update.get(n, float("inf")), update_s)
            trial.done_cycles += 1
            if free < n:  # another program took the cores this candidate needs
                return self._finish(trial, free)
            # A candidate far behind in both phases after one cycle is not worth a second:
            # contended threads can be ten times slower.
            others_r = [t for m, t in trial.rollout.items() if m != n]
            others_u = [t for m, t in trial.update.items() if m != n]
            hopeless = (
                bool(others_r)
                and trial.rollout[n] > 1.5 * min(others_r)
                and trial.update[n] > 1.5 * min(others_u)
            )
            if not hopeless and trial.done_cycles < TRIAL_CYCLES:
                return None
            trial.done_cycles = 0
            worse = trial.rollout[n] > 1.2 * min(trial.rollout.values()) and trial.update[
                n
            ] > 1.2 * min(trial.update.values())
            if hopeless or worse or trial.index + 1 >= len(trial.candidates):
                return self._finish(trial, free)
            trial.index += 1
            return None
        capped = self.on_load(free)
        if capped is not None:
            return capped
        if free > self._tried_up_to:
            self._roomy_cycles += 1
            if self._roomy_cycles >= RETRY_AFTER_CYCLES:
                return self._start_trial(free)
        else:
            self._roomy_cycles = 0
        return None

    def on_load(self, free: int) -> ThreadPlan | None:
        """A new load reading: fewer threads at once if other programs took their cores."""
        trial = self._trial
        if trial is not None:
            if trial.current > free:
                return self._finish(trial, free)
            return None
        if max(self.plan.rollout, self.plan.update) <= free:
            return None
        self.plan = ThreadPlan(
            min(self.plan.rollout, free),
            min(self.plan.update, free),
            f"other programs now leave {free} core{'s' if free > 1 else ''} free",
        )
        self._tried_up_to = min(self._tried_up_to, free)
        return self.plan

    def _start_trial(self, free: int) -> ThreadPlan | None:
        self._roomy_cycles = 0
        cands = candidates_for(free)
        if len(cands) == 1:
            self._tried_up_to = free
            new = ThreadPlan(1, 1, "1 core free")
            changed = new != self.plan
            self.plan = new
            return new if changed else None
        self._trial = _Trial(cands, free)
        self.plan = ThreadPlan(
            cands[0], cands[0], f"trying {', '.join(map(str, cands))} threads ({free} cores free)"
        )
        return self.plan

    def _finish(self, trial: _Trial, free: int) -> ThreadPlan:
        self._trial = None
        self._tried_up_to = trial.free
        fits = {n: t for n, t in trial.rollout.items() if n <= free} or {1: 0.0}
        fits_u = {n: t for n, t in trial.update.items() if n <= free} or {1: 0.0}
        self.plan = ThreadPlan(
            _pick(fits),
            _pick(fits_u),
            f"fastest of {len(trial.rollout)} measured with {free} core"
            f"{'s' if free > 1 else ''} free (rollout {_seconds(fits)}; "
            f"update {_seconds(fits_u)})",
        )
        return self.plan


class ThreadPolicy:
    """The governor's view: the profile's fixed count, or the chooser's, per phase.

    The governor calls :meth:`end_phase` and :meth:`start_phase` at the rollout/update
    boundaries (a checkpoint written in between is not timed) and :meth:`fit_load` after
    each load reading.
    """

    def __init__(self, load: LoadSensor) -> None:
        self.load = load
        self.fixed: int | None = 1
        self.chooser = ThreadChooser()
        self.current = 1
        self._phase = "rollout"
        self._t0: float | None = None
        self._spent: dict[str, float] = {}
        self._clean = False  # no knob change inside the cycle being timed

    @property
    def free(self) -> int | None:
        """Cores other programs leave free; None before the first load reading."""
        return self.load.reading.free_cores if self.load.reading else None

    def set_fixed(self, threads: int | None) -> None:
        """A mode's count (None: 'auto'); a cycle that saw a change is not timed."""
        self.fixed = threads
        self._clean = False

    def for_phase(self, phase: str) -> int:
        n = self.fixed if self.fixed is not None else self.chooser.threads(phase)
        self.current = n
        return n

    def fit_load(self) -> bool:
        """True when the threads in use must change now (another program took cores)."""
        if self.fixed is not None or self.free is None:
            return False
        return self._report(self.chooser.on_load(self.free))

    def start_phase(self, phase: str) -> None:
        self._phase, self._t0 = phase, time.perf_counter()
        if phase == "rollout":
            self._spent.clear()

    def end_phase(self) -> bool:
        """Close the phase's timing; True when a finished cycle changed the plan."""
        if self._t0 is None:
            return False
        self._spent[self._phase] = time.perf_counter() - self._t0
        self._t0 = None
        if self._phase != "update" or "rollout" not in self._spent:
            return False
        clean, self._clean = self._clean, True
        if self.fixed is not None or not clean:
            return False
        return self._report(
            self.chooser.on_cycle(self._spent["rollout"], self._spent["update"], self.free)
        )

    def status(self) -> ThreadsStatus:
        if self.fixed is not None:
            return ThreadsStatus(choice="profile", rollout=self.fixed, update=self.fixed)
        plan = self.chooser.plan
        return ThreadsStatus(
            choice=self.chooser.state,
            rollout=plan.rollout,
            update=plan.update,
            free_cores=self.free,
            reason=plan.reason,
        )

    def _report(self, plan: ThreadPlan | None) -> bool:
        if plan is None:
            return False
        log.info("🧵 Threads: %s (%s)", plan.describe(), plan.reason)
        return True
