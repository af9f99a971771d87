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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from perfmode.config.schema import Config
from perfmode.governor.effective import AutoReadings, AutoState, Decision, LoadWindow, decide
from perfmode.governor.gpu import blocking_sync, monitor_for
from perfmode.governor.homebudget import HomeBudget, home_free_cores
from perfmode.governor.idle import IdleSensor
from perfmode.governor.load import LoadSensor
from perfmode.governor.threads import ThreadPolicy
from perfmode.settings.holds import active_holds
from perfmode.settings.store import (
    Mode,
    Settings,
    SettingsStore,
    SettingsWatcher,
    format_time,
    utc_now,
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
        self.duty = (
            DutyCycle(clock=time.perf_counter, settle=blocking_sync())
            if device == "cuda"
            else DutyCycle()
        )
        self.load = LoadSensor(trainers=trainers)
        self.load_window = LoadWindow()
        self.idle = IdleSensor()
        self.auto_state = AutoState()
        self.threads = ThreadPolicy(self.load)
        self.gpu = monitor_for(device)
        self.decision = self._decide()
        why = self._poll_gpu()
        self.knobs = knobs_for(self._wanted(), config)
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
        reading = self.load.poll()
        if reading is not None:
            # Auto asks whether someone uses the computer: other perfmode runs are not that.
            self.load_window.add(time.monotonic(), reading.program_cores)
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
            self.duty.set_share(self._duty_share())

    def _duty_share(self) -> float:
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
        settings = self.settings
        auto = settings.mode is Mode.AUTO
        readings = AutoReadings(
            idle_s=self.idle.poll() if auto else None,
            foreign_cores=self.load_window.mean(time.monotonic()),
        )
        decision, self.auto_state = decide(
            settings,
            active_holds(settings.data),
            readings,
            self.config.auto,
            self.auto_state,
            time.monotonic(),
        )
        return decision

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
        self.knobs = knobs_for(mode, self.config, self.batch_cap)
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
        """The decided mode, or quiet (from performance) while the temperature guard holds."""
        mode = self.decision.mode
        return Mode.QUIET if self.gpu.hot and mode is Mode.PERFORMANCE else mode

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

    def status_fields(self) -> dict[str, Any]:
        k = self.knobs
        return {
            "requested_mode": self.settings.mode.value,
            "applied_mode": k.mode.value,
            "mode_reason": self.reason or self.decision.reason,
            "paused_since": format_time(self.paused_since) if self.paused_since else None,
            "input_idle_s": self.idle.reading if self.idle.source_name else None,
            "input_idle_source": self.idle.source_name,
            "input_idle_unknown": self.idle.unknown,
            "applied_at": format_time(self.applied_at),
            "applied_during": self.applied_during,
            "batch_size": k.batch_size,
            "n_epochs": k.n_epochs,
            "torch_threads": self.threads.current,
            "threads": self.threads.status(),
            "foreign_cpu": self.load.reading.foreign_cores if self.load.reading else None,
            "other_trainers_cpu": self.load.reading.trainer_cores if self.load.reading else None,
            "cpu_share": self._duty_share(),
            "cuda_memory_fraction": k.cuda_memory_fraction if self.device == "cuda" else None,
            "gpu": self.gpu.status(),
            "batch_cap": self.batch_cap,
            "settings_problem": self.settings.problem,
            **(self.budget.status_fields() if self.budget is not None else {}),
        }

    def _apply_now(self, k: Knobs) -> None:
        import torch

        self.threads.set_fixed(k.torch_threads)
        self._apply_threads()
        self.duty.set_share(self._duty_share())
        if self.device == "cuda":
            # Uncapped is a fraction of 1.0: the call replaces any earlier cap.
            torch.cuda.set_per_process_memory_fraction(k.cuda_memory_fraction or 1.0)

    def _apply_threads(self) -> None:
        import torch

        n = self.threads.for_phase(self.phase)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def _check_batch(self, k: Knobs) -> None:
        rollout = self.config.rollout_size
        wanted = wanted_batch(k.mode, self.config)
        if wanted > rollout:
            self._warn_once(
                f"batch size {wanted} of {k.mode.value} mode is larger than the rollout "
                f"({rollout} = n_steps × n_envs); using {rollout}"
            )
        elif rollout % k.batch_size:
            self._warn_once(
                f"batch size {k.batch_size} does not divide the rollout of {rollout}; "
                "each epoch ends with a smaller minibatch"
            )

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("⚠️  %s", message)
