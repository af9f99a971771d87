"""The one decision of which mode a trainer runs in, and why. Pure: no I/O, no clock.

In order:

1. an active hold (:mod:`perfmode.settings.holds`), the least demanding of them: paused over quiet
   over performance;
2. else ``performance_mode`` from settings.json (set by the CLI, the schedule, a hand edit);
3. where that is ``auto``: quiet while the computer is in use, performance while it is not,
   with hysteresis (:func:`resolve_auto`).

Every decision carries its reason (``cli``, ``schedule``, ``hand edit``, ``hold 3fa2c1:
zoom``, ``auto: idle 14 min``, ``auto: other programs 1.2 cores``) for status, log and
metrics.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from perfmode.base.clock import human_span
from perfmode.base.modes import Mode
from perfmode.config.schema import AutoConfig
from perfmode.settings.holds import Hold, winning_hold
from perfmode.settings.store import Settings


@dataclass(frozen=True)
class AutoReadings:
    """What auto sees, each None where it cannot be read."""

    idle_s: float | None = None
    """Seconds since the last keyboard or mouse input."""
    foreign_cores: float | None = None
    """Cores other programs used over the last ~10 s (the load sensor)."""


class LoadWindow:
    """Other programs' CPU use averaged over the last ``span`` seconds of load readings.

    The load sensor reads every couple of seconds; auto judges the level sustained over the
    last few readings, so a blip (a page loading) does not count as use while a program
    that keeps a core busy does within two readings.
    """

    def __init__(self, span: float = 10.0) -> None:
        self.span = span
        self._readings: deque[tuple[float, float]] = deque()

    def add(self, now: float, cores: float) -> None:
        self._readings.append((now, cores))
        while self._readings and self._readings[0][0] < now - self.span:
            self._readings.popleft()

    def mean(self, now: float) -> float | None:
        """The level other programs sustain: the median of the last three readings in the
        window. One blip (a page loading) does not move it; a program that keeps a core busy
        does after two readings (~4 s), where a plain 10 s mean took 10 s or more to cross a
        threshold set near the burner's own load."""
        recent = [c for t, c in self._readings if t >= now - self.span - 5][-3:]
        if not recent:
            return None
        return round(sorted(recent)[len(recent) // 2], 3)


@dataclass(frozen=True)
class AutoState:
    """What auto remembers between decisions (times on a monotonic clock, in seconds)."""

    mode: Mode | None = None
    """Quiet or performance; None before the first decision."""
    switched_at: float | None = None
    last_use_at: float | None = None


@dataclass(frozen=True)
class Decision:
    mode: Mode
    """The effective mode: quiet, performance or paused (never auto)."""
    reason: str
    source: str
    """Who decided, without the changing figures (``cli``, ``hold 3fa2c1``, ``auto``): a
    switch is logged when the mode or this changes."""


def in_use(r: AutoReadings, cfg: AutoConfig) -> str | None:
    """Why the computer counts as in use right now, or None when it does not."""
    if r.idle_s is not None and r.idle_s < cfg.idle_after:
        return f"input {human_span(r.idle_s)} ago"
    if r.foreign_cores is not None and r.foreign_cores > cfg.foreign_cpu:
        return f"other programs {r.foreign_cores:.2f} cores"
    return None


def _free(r: AutoReadings) -> str:
    parts = []
    if r.idle_s is not None:
        parts.append(f"idle {human_span(r.idle_s)}")
    if r.foreign_cores is not None:
        parts.append(f"other programs {r.foreign_cores:.2f} cores")
    return ", ".join(parts) or "no readings yet"


def resolve_auto(
    r: AutoReadings, cfg: AutoConfig, state: AutoState, now: float
) -> tuple[Mode, str, AutoState]:
    """Auto's mode at ``now``.

    - Use drops to quiet at the first reading that shows it (readings come every few
      seconds, so within 15 s of use starting).
    - Performance comes back only after ``resume_after`` seconds without any use *and*
      ``resume_after`` seconds after the last switch: a load wobbling around the
      threshold holds quiet instead of flapping, and under any load there are at most
      two switches per ``resume_after`` (one down, one up).
    - Before any reading exists the mode is quiet: nothing is known yet.
    """
    use = in_use(r, cfg)
    last_use = now if use else state.last_use_at
    if use:
        mode, reason = Mode.QUIET, f"auto: {use}"
    elif r.idle_s is None and r.foreign_cores is None:
        mode, reason = Mode.QUIET, "auto: no readings yet"
    else:
        quiet_for = now - last_use if last_use is not None else None
        since_switch = now - state.switched_at if state.switched_at is not None else None
        if state.mode is not Mode.QUIET or (
            (quiet_for is None or quiet_for >= cfg.resume_after)
            and (since_switch is None or since_switch >= cfg.resume_after)
        ):
            mode, reason = Mode.PERFORMANCE, f"auto: {_free(r)}"
        else:
            waits = [cfg.resume_after - x for x in (quiet_for, since_switch) if x is not None]
            left = max(0.0, max(waits, default=0.0))
            mode = Mode.QUIET
            reason = f"auto: {_free(r)}; performance in {human_span(left)}"
    switched = now if mode is not state.mode else state.switched_at
    return mode, reason, AutoState(mode, switched, last_use)


def settings_reason(s: Settings) -> str:
    if not s.ok:
        return "settings.json unusable"
    return s.changed_by or "settings.json"


def decide(
    settings: Settings,
    holds: list[Hold],
    readings: AutoReadings,
    cfg: AutoConfig,
    state: AutoState,
    now: float,
) -> tuple[Decision, AutoState]:
    """The effective mode and its reason; ``holds`` are the active ones."""
    hold = winning_hold(holds)
    if hold is not None:
        d = Decision(hold.mode, hold.describe(), f"hold {hold.id}")
        return d, state
    requested = settings.mode
    if requested is not Mode.AUTO:
        who = settings_reason(settings)
        return Decision(requested, who, who), state
    mode, reason, state = resolve_auto(readings, cfg, state, now)
    return Decision(mode, reason, "auto"), state
