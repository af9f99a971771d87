"""What the user asked for and how the measuring time is split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmode.config.schema import Config

MODE_SHARE = 0.75
"""Of the time asked for, the share spent alternating modes; plain SB3 gets the rest."""
SETTLE_S = 2.0
"""Seconds skipped after each switch (less when segments are short)."""
SAMPLE_S = 0.25
"""How often memory, status.json and the other programs' load are sampled."""
START_TIMEOUT_S = 600.0
"""Ceiling for a child's start-up and first cycle (a big config on a busy machine is slow)."""
APPLY_TIMEOUT_S = 60.0
HUGE_TIMESTEPS = 10**12
"""The trainer runs until the bench stops it."""
MIN_MINUTES, MAX_MINUTES = 0.1, 24 * 60.0

Progress = Callable[[str, float, float], None]
"""``progress(what, seconds_done, seconds_total)`` of the measuring time."""


@dataclass(frozen=True)
class BenchRequest:
    config: Config = field(default_factory=Config)
    """The user's config, with the command line's data options applied."""
    config_name: str = "default config"
    data: str | None = None
    """A price file or 'synthetic' instead of ``env.data``."""
    minutes: float = 2.0
    reference: bool = True
    plot: Path | None = None


@dataclass(frozen=True)
class Plan:
    """How the measuring time is split; start-up and warm-up come on top."""

    minutes: float
    reference: bool

    @property
    def mode_seconds(self) -> float:
        return self.minutes * 60 * (MODE_SHARE if self.reference else 1.0)

    @property
    def reference_seconds(self) -> float:
        return self.minutes * 60 - self.mode_seconds

    @property
    def segments(self) -> int:
        return 6 if self.mode_seconds >= 60 else 4

    @property
    def segment_seconds(self) -> float:
        return self.mode_seconds / self.segments

    @property
    def settle_seconds(self) -> float:
        return min(SETTLE_S, 0.2 * self.segment_seconds)

    @property
    def trial_seconds(self) -> float:
        """At most this long for performance mode to settle its threads before measuring."""
        return max(10.0, 0.25 * self.mode_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "mode_seconds": round(self.mode_seconds, 1),
            "segments": self.segments,
            "segment_seconds": round(self.segment_seconds, 1),
            "settle_seconds": round(self.settle_seconds, 2),
            "reference_seconds": round(self.reference_seconds, 1),
        }
