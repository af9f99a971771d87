"""What the governor senses, and the mode it decides from that and settings.json.

One bundle: the load sensor (other programs' CPU, and this home's other trainers), its
window for ``auto``, the input idle sensor, and ``auto``'s state between polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from perfmode.base.modes import Mode
from perfmode.config.schema import AutoConfig
from perfmode.governor.effective import AutoReadings, AutoState, Decision, LoadWindow, decide
from perfmode.governor.idle import IdleSensor
from perfmode.governor.load import LoadReading, LoadSensor
from perfmode.settings.holds import active_holds
from perfmode.settings.store import Settings


class Sensors:
    def __init__(self, auto: AutoConfig, trainers: Callable[[], Iterable[int]] | None) -> None:
        self.auto = auto
        self.load = LoadSensor(trainers=trainers)
        self.load_window = LoadWindow()
        self.idle = IdleSensor()
        self.auto_state = AutoState()

    def poll_load(self) -> LoadReading | None:
        """A new load reading when one is due, else None."""
        reading = self.load.poll()
        if reading is not None:
            # Auto asks whether someone uses the computer: other perfmode runs are not that.
            self.load_window.add(time.monotonic(), reading.program_cores)
        return reading

    def decide(self, settings: Settings) -> Decision:
        """The mode settings.json, its holds and (for ``auto``) the readings ask for."""
        auto = settings.mode is Mode.AUTO
        readings = AutoReadings(
            idle_s=self.idle.poll() if auto else None,
            foreign_cores=self.load_window.mean(time.monotonic()),
        )
        decision, self.auto_state = decide(
            settings,
            active_holds(settings.data),
            readings,
            self.auto,
            self.auto_state,
            time.monotonic(),
        )
        return decision
