"""The governor: turns the requested mode into real resource use, inside the trainer.

It is ticked from both phases of PPO (every env step of a rollout and every optimizer
step of an update), polls settings.json at most every ``poll_interval`` seconds (one stat)
and applies a new mode in two parts:

- at once: torch threads, the duty cycle (of the CPU, or on CUDA of the GPU), the CUDA
  memory cap;
- right before the next update: batch size and epochs (SB3's ``PPO.train`` reads
  ``n_epochs`` once per update and ``batch_size`` once per epoch).

A profile with ``torch_threads: auto`` leaves the thread count to measurement
(:mod:`perfmode.governor.threads`), per phase, within the cores the load sensor
(:mod:`perfmode.governor.load`) sees free.

Which mode is decided at each poll by :func:`perfmode.governor.effective.decide` (holds, the
requested mode, ``auto`` through the load sensor and input idle time). ``paused`` is a wait
inside :meth:`Governor.tick`: at the tick that sees it the trainer saves a checkpoint if the
last is old, then sleeps, polling, until another mode (or a stop) comes.

On CUDA a temperature guard (:mod:`perfmode.governor.gpu`) runs quiet's knobs while the GPU is above
the requested mode's ``gpu_max_temp_c``, until it has cooled by ``gpu_cooldown_c``.

The :class:`Governor` composes parts with one job each: the settings watcher
(:class:`~perfmode.settings.store.SettingsWatcher`), the sensors and the decision
(:class:`~perfmode.governor.sensors.Sensors`), the GPU monitor, and the knob appliers
(:class:`~perfmode.governor.appliers.KnobAppliers`: threads, duty cycle, CUDA cap). What it
keeps is the loop: when to poll, when to switch, and :meth:`Governor._knobs_for`, where the
knobs of a switch are decided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from perfmode.base.clock import utc_now
from perfmode.base.modes import Mode, under_heat
from perfmode.config.schema import Config
from perfmode.governor.appliers import KnobAppliers
from perfmode.governor.duty import charge_startup
from perfmode.governor.effective import Decision
from perfmode.governor.gpu import monitor_for
from perfmode.governor.homebudget import HomeBudget, home_free_cores
from perfmode.governor.report import report_governor
from perfmode.governor.sensors import Sensors
from perfmode.settings.store import Settings, SettingsStore, SettingsWatcher
from perfmode.status.model import (
    TrainerStatus,
)

log = logging.getLogger("perfmode.train")


@dataclass(frozen=True)
class Knobs:
    """What a mode means for this run, after validation against the rollout size."""

    mode: Mode
    batch_size: int
    n_epochs: int
    torch_threads: int | None
    """None: chosen by measurement (the profile says 'auto')."""
    cpu_share: float
    cuda_memory_fraction: float | None

    def describe(self) -> str:
        if self.mode is Mode.PAUSED:
            return "no training, everything kept in memory"
        threads = "auto" if self.torch_threads is None else self.torch_threads
        return (
            f"batch {self.batch_size}, epochs {self.n_epochs}, "
            f"threads {threads}, cpu {self.cpu_share:.0%}"
        )


def wanted_batch(mode: Mode, config: Config) -> int:
    """ppo.batch_size scaled by the mode, before it is fitted to the rollout."""
    return round(config.ppo.batch_size * config.modes.profile(mode).batch_size_multiplier)


def fit_batch(batch: int, config: Config) -> int:
    """A batch SB3 can use: at least 2 (0 loops forever), at most the rollout size."""
    return max(2, min(batch, config.rollout_size))


def knobs_for(mode: Mode, config: Config, batch_cap: int | None = None) -> Knobs:
    """The knobs of ``mode``: batch in [2, rollout size], at most ``batch_cap`` (OOM)."""
    profile = config.modes.profile(mode)
    batch = fit_batch(wanted_batch(mode, config), config)
    if batch_cap is not None:
        batch = min(batch, batch_cap)
    return Knobs(
        mode=mode,
        batch_size=batch,
        n_epochs=max(1, round(config.ppo.n_epochs * profile.epochs_multiplier)),
        torch_threads=profile.threads(),
        cpu_share=profile.cpu_share,
        cuda_memory_fraction=profile.cuda_memory_fraction,
    )


def batch_problem(k: Knobs, config: Config) -> str | None:
    """What is odd about ``k``'s batch for this rollout (said once per run), if anything."""
    rollout = config.rollout_size
    wanted = wanted_batch(k.mode, config)
    if wanted > rollout:
        return (
            f"batch size {wanted} of {k.mode.value} mode is larger than the rollout "
            f"({rollout} = n_steps × n_envs); using {rollout}"
        )
    if rollout % k.batch_size:
        return (
            f"batch size {k.batch_size} does not divide the rollout of {rollout}; "
            "each epoch ends with a smaller minibatch"
        )
    return None


class Governor:
    def __init__(
        self,
        store: SettingsStore,
        config: Config,
        *,
        device: str = "cpu",
        on_poll: Callable[[], None] | None = None,
        on_pause: Callable[[], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        trainers: Callable[[], Iterable[int]] | None = None,
        budget: HomeBudget | None = None,
        started_cpu: float | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.on_poll = on_poll
        self.on_pause = on_pause
        self.should_stop = should_stop or (lambda: False)
        self._sleep = sleep
        self.poll_interval = config.training.poll_interval
        self.batch_cap: int | None = None
        self.watcher = SettingsWatcher(store, log)
        self.sensors = Sensors(config.auto, trainers)
        self.appliers = KnobAppliers(device, self.sensors.load)
        # Direct references, not lookups through the parts: tick() runs every env step.
        self.duty, self.threads = self.appliers.duty, self.appliers.threads
        self.load, self.idle = self.sensors.load, self.sensors.idle
        self.gpu = monitor_for(device)
        self.decision = self._decide()
        why = self._poll_gpu()
        self.knobs = self._knobs_for(self._wanted())
        self.reason = self.gpu.reason
        self.paused_since = utc_now() if self.knobs.mode is Mode.PAUSED else None
        self.applied_at = utc_now()
        self.switches = 0
        self._applied_source = self.decision.source
        self.phase = "rollout"  # or "update"; set by the trainer's callback
        self.applied_during = "start"
        self._warned: set[str] = set()
        self._next_poll = 0.0
        self.budget = budget
        self._apply_now(self.knobs)
        self._check_batch(self.knobs)
        self._poll_budget()
        if why is None and self.settings.missing:
            why = "default; no settings.json yet"
        self._log_mode(why or self.decision.reason)
        if started_cpu is not None:
            charge_startup(self.duty, time.process_time() - started_cpu)

    @property
    def settings(self) -> Settings:
        return self.watcher.current

    def tick(self) -> None:
        """Cheap enough to call on every env step: a clock read, a stat every poll interval."""
        now = time.perf_counter()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval
            self._poll()
            if self.knobs.mode is Mode.PAUSED:
                self._wait_while_paused()
                now = time.perf_counter()
        self.duty.tick(now)

    def _poll(self) -> None:
        self.watcher.poll()
        reading = self.sensors.poll_load()
        self.decision = self._decide()
        why = self._poll_gpu()
        mode = self._wanted()
        if (
            mode is not self.knobs.mode
            or self.gpu.reason != self.reason
            or self.decision.source != self._applied_source
        ):
            self.switch(mode, why or self.decision.reason)
        if reading is not None and self.knobs.mode is not Mode.PAUSED and self.threads.fit_load():
            self._apply_threads()
        self._poll_budget()
        if self.on_poll is not None:
            self.on_poll()

    def _wait_while_paused(self) -> None:
        """Sleep, polling settings.json every poll interval, until another mode or a stop."""
        if self.on_pause is not None:
            self.on_pause()
        while self.knobs.mode is Mode.PAUSED and not self.should_stop():
            self._sleep(self.poll_interval)
            self._poll()

    # -- the home's budget (perfmode.governor.homebudget) -------------------------------

    def _poll_budget(self) -> None:
        """This run's share of the home: the duty cycle's share at once; waiting is
        waited out at the next safe point (:meth:`wait_for_turn`)."""
        if self.budget is None:
            return
        free = home_free_cores(self.load.reading, self.load.cores)
        if self.budget.poll(self.knobs.mode, self.knobs.cpu_share, free):
            self.duty.set_share(self.duty_share())

    def duty_share(self) -> float:
        if self.budget is None or self.budget.share.waiting:
            return self.knobs.cpu_share
        return min(self.knobs.cpu_share, self.budget.share.cpu_share)

    @property
    def waiting(self) -> bool:
        return self.budget is not None and self.budget.share.waiting

    def wait_for_turn(self) -> None:
        """At a safe point: while the home's budget has no room for this run, sleep,
        polling every poll interval, until it has (or a stop comes)."""
        if not self.waiting:
            return
        if self.on_pause is not None:
            self.on_pause()
        while self.waiting and not self.should_stop():
            self._sleep(self.poll_interval)
            self._poll()

    # ------------------------------------------------------------------------------------

    def _decide(self) -> Decision:
        return self.sensors.decide(self.settings)

    def _knobs_for(self, mode: Mode) -> Knobs:
        """The one place where this run's knobs (CPU share, threads, batch, epochs) are
        decided, at each switch; threads under ``auto`` then follow the load at each poll
        (``threads.fit_load``). A limit shared by the home's runs would cap them here."""
        return knobs_for(mode, self.config, self.batch_cap)

    def end_phase(self) -> None:
        """At the end of a rollout or an update (before a checkpoint is written)."""
        self.threads.end_phase()

    def start_phase(self, phase: str) -> None:
        """At the start of a rollout or an update: that phase's threads, timed from now."""
        self.phase = phase
        self._apply_threads()
        self.threads.start_phase(phase)

    def switch(self, mode: Mode, why: str | None = None) -> None:
        """Apply ``mode``'s knobs now (batch and epochs at the next update); ``why`` is logged."""
        was_paused = self.knobs.mode is Mode.PAUSED
        self.knobs = self._knobs_for(mode)
        self.reason = self.gpu.reason
        self._applied_source = self.decision.source
        if mode is Mode.PAUSED and not was_paused:
            self.paused_since = utc_now()
        elif mode is not Mode.PAUSED:
            self.paused_since = None
        self._apply_now(self.knobs)
        self._check_batch(self.knobs)
        self.applied_at = utc_now()
        self.applied_during = self.phase
        self.switches += 1
        self._log_mode(why)

    def _wanted(self) -> Mode:
        """The decided mode, or its heat fallback (the mode table's) while the guard holds."""
        mode = self.decision.mode
        return under_heat(mode) if self.gpu.hot else mode

    def _poll_gpu(self) -> str | None:
        profile = self.config.modes.profile(self.decision.mode)
        return self.gpu.poll(profile.gpu_max_temp_c, profile.gpu_cooldown_c)

    def _log_mode(self, why: str | None) -> None:
        k = self.knobs
        suffix = f" — {why}" if why else ""
        log.info("⚙️ Performance mode: %s (%s)%s", k.mode.value, k.describe(), suffix)
        if k.mode is Mode.PAUSED and self.paused_since is not None:
            since = self.paused_since.astimezone().strftime("%H:%M:%S")
            log.info("⏸️  Paused since %s; any other mode resumes at once", since)

    def apply_update_knobs(self, model: Any) -> None:
        """Right before an update: the batch size and epochs of the current mode."""
        model.batch_size = self.knobs.batch_size
        model.n_epochs = self.knobs.n_epochs

    def cap_batch(self, cap: int) -> None:
        """After a CUDA OOM: no batch above ``cap`` for the rest of the run, in any mode."""
        self.batch_cap = cap
        self.knobs = replace(self.knobs, batch_size=min(self.knobs.batch_size, cap))

    def report(self, into: TrainerStatus) -> None:
        """Its sections of the trainer's status: mode, knobs, idle, load, threads, GPU."""
        report_governor(self, into)

    @property
    def mode_reason(self) -> str:
        """Why the applied mode: the GPU guard's reason, else the decision's."""
        return self.reason or self.decision.reason

    def _apply_now(self, k: Knobs) -> None:
        self.appliers.apply_now(k, self.phase)
        if self.budget is not None:  # the home's share, not the profile's
            self.duty.set_share(self.duty_share())

    def _apply_threads(self) -> None:
        self.appliers.apply_threads(self.phase)

    def _check_batch(self, k: Knobs) -> None:
        message = batch_problem(k, self.config)
        if message is not None:
            self._warn_once(message)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("⚠️  %s", message)
