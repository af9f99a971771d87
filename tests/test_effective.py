"""The effective-mode decision: holds over the requested mode, auto's hysteresis (fake clock)."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

from perfmode.base.clock import utc_now
from perfmode.base.modes import Mode
from perfmode.config.schema import AutoConfig
from perfmode.governor.effective import AutoReadings, AutoState, LoadWindow, decide, resolve_auto
from perfmode.settings.holds import Hold
from perfmode.settings.store import parse_settings

CFG = AutoConfig()  # idle_after 300 s, foreign_cpu 0.25 cores, resume_after 60 s


def settings(mode: str, by: str = "cli"):
    return parse_settings(
        f'{{"performance_mode": "{mode}", "changed_by": "{by}", "changed_to": "{mode}"}}'.encode()
    )


def hold(hid: str, mode: Mode, reason: str = "") -> Hold:
    return Hold(hid, mode, reason, until=utc_now() + timedelta(hours=1))


def test_requested_mode_and_its_source_without_holds() -> None:
    d, _ = decide(settings("performance", "schedule"), [], AutoReadings(), CFG, AutoState(), 0)
    assert (d.mode, d.reason) == (Mode.PERFORMANCE, "schedule")
    hand = parse_settings(b'{"performance_mode": "paused"}')
    d, _ = decide(hand, [], AutoReadings(), CFG, AutoState(), 0)
    assert (d.mode, d.reason) == (Mode.PAUSED, "hand edit")


def test_least_demanding_hold_outranks_the_requested_mode() -> None:
    holds = [hold("aaa111", Mode.PERFORMANCE, "render"), hold("bbb222", Mode.QUIET, "zoom")]
    d, _ = decide(settings("performance"), holds, AutoReadings(), CFG, AutoState(), 0)
    assert (d.mode, d.reason) == (Mode.QUIET, "hold bbb222: zoom")
    holds.append(hold("ccc333", Mode.PAUSED, "game"))
    d, _ = decide(settings("auto"), holds, AutoReadings(), CFG, AutoState(), 0)
    assert d.mode is Mode.PAUSED and d.source == "hold ccc333"


def test_auto_quiet_at_once_on_use_and_performance_only_after_the_hold_off() -> None:
    state, t = AutoState(), 0.0
    free = AutoReadings(idle_s=900, foreign_cores=0.02)
    mode, reason, state = resolve_auto(free, CFG, state, t)
    assert mode is Mode.PERFORMANCE and reason == "auto: idle 15 min, other programs 0.02 cores"
    t += 5
    mode, reason, state = resolve_auto(AutoReadings(idle_s=2, foreign_cores=0.0), CFG, state, t)
    assert mode is Mode.QUIET and reason == "auto: input 2 s ago"
    for _ in range(11):  # 55 s without use: still quiet
        t += 5
        mode, reason, state = resolve_auto(free, CFG, state, t)
        assert mode is Mode.QUIET and "performance in" in reason
    t += 5
    mode, _, state = resolve_auto(free, CFG, state, t)
    assert mode is Mode.PERFORMANCE
    mode, reason, _ = resolve_auto(AutoReadings(foreign_cores=1.2), CFG, state, t + 2)
    assert mode is Mode.QUIET and reason == "auto: other programs 1.20 cores"


def test_no_readings_yet_is_quiet() -> None:
    mode, reason, _ = resolve_auto(AutoReadings(), CFG, AutoState(), 0)
    assert mode is Mode.QUIET and reason == "auto: no readings yet"


def test_a_load_wobbling_around_the_threshold_switches_at_most_once_a_minute() -> None:
    """Load sensor readings every 2 s of a load that swings around 0.25 cores with periods
    from 4 s to 3 min, through the same 10 s window the governor uses, for two hours."""
    for period in (4, 10, 30, 45, 70, 130, 180):
        window, state, t = LoadWindow(), AutoState(), 0.0
        switches: list[tuple[float, Mode]] = []
        mode = None
        while t < 7200:
            load = 0.25 + 0.2 * math.sin(2 * math.pi * t / period)
            window.add(t, load)
            new, _, state = resolve_auto(AutoReadings(foreign_cores=window.mean(t)), CFG, state, t)
            if mode is not None and new is not mode:
                switches.append((t, new))
            mode, t = new, t + 2.0
        # A switch back to performance comes at least a minute after the switch before it,
        # so over the run there is at most one switch a minute (down, then up a minute on).
        for (t0, _), (t1, to) in itertools.pairwise(switches):
            assert to is Mode.QUIET or t1 - t0 >= 60, (period, t0, t1)
        assert len(switches) <= 7200 / 60, (period, len(switches))
        if period <= 45:  # faster than the hold-off: it simply stays quiet
            assert len(switches) <= 1, (period, switches)
