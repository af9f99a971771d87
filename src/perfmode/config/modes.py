"""The ``modes:`` and ``auto:`` sections: what each mode does to the machine's resources, and
when mode ``auto`` counts the computer as in use.

``ModesConfig`` is built from the mode table (:data:`perfmode.base.modes.TABLE`): a profile
per row that names one, so a mode added there is a section here without a line of code.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from perfmode.base.modes import Mode, profiles
from perfmode.config.sections import check
from perfmode.errors import PerfmodeError


@dataclass(frozen=True)
class ModeProfile:
    """What one mode does to the machine's resources."""

    batch_size_multiplier: float = 1.0
    """Scales ppo.batch_size before the next update."""
    epochs_multiplier: float = 1.0
    """Scales ppo.n_epochs before the next update."""
    torch_threads: int | Literal["all", "auto"] = 1
    """Torch intra-op threads, applied at once. 'auto' measures which count trains fastest
    (per phase: rollout and update) and never uses more than the cores other programs leave
    free; 'all' = every core this process may use; a number is used as given."""
    cpu_share: float = 0.5
    """Fraction of wall time the trainer computes (a duty cycle of ~100 ms slots), at once."""
    cuda_memory_fraction: float | None = None
    """Cap on this process's share of GPU memory (CUDA only); null = no cap."""
    gpu_max_temp_c: float | None = 83.0
    """Temperature guard (CUDA only): above this many °C the trainer runs quiet's knobs until
    the GPU has cooled by gpu_cooldown_c; null = off (quiet's default: it is quiet already)."""
    gpu_cooldown_c: float = 8.0
    """How many °C below gpu_max_temp_c the GPU must cool before this mode's knobs return."""

    def validate(self, where: str) -> None:
        check(
            0.1 <= self.batch_size_multiplier <= 64,
            f"{where}.batch_size_multiplier",
            self.batch_size_multiplier,
            "from 0.1 to 64",
        )
        check(
            0.1 <= self.epochs_multiplier <= 64,
            f"{where}.epochs_multiplier",
            self.epochs_multiplier,
            "from 0.1 to 64",
        )
        check(
            self.torch_threads in ("all", "auto") or 1 <= int(self.torch_threads) <= 1024,
            f"{where}.torch_threads",
            self.torch_threads,
            "'auto', 'all' or a number from 1 to 1024",
        )
        check(0.05 <= self.cpu_share <= 1, f"{where}.cpu_share", self.cpu_share, "from 0.05 to 1")
        frac = self.cuda_memory_fraction
        check(
            frac is None or 0.05 <= frac <= 1,
            f"{where}.cuda_memory_fraction",
            frac,
            "null or from 0.05 to 1",
        )
        hot = self.gpu_max_temp_c
        check(
            hot is None or 1 <= hot <= 120,
            f"{where}.gpu_max_temp_c",
            hot,
            "null (no guard) or from 1 to 120 °C",
        )
        check(
            1 <= self.gpu_cooldown_c <= 50,
            f"{where}.gpu_cooldown_c",
            self.gpu_cooldown_c,
            "from 1 to 50 °C",
        )

    def threads(self) -> int | None:
        """The fixed thread count, or None for 'auto' (the governor measures)."""
        if self.torch_threads == "auto":
            return None
        if self.torch_threads == "all":
            return available_cores()
        return int(self.torch_threads)

    @property
    def changes_learning(self) -> bool:
        """Whether this profile changes what is learned (batch size or epochs), not only speed."""
        return self.batch_size_multiplier != 1.0 or self.epochs_multiplier != 1.0


def _profile(self: Any, mode: Mode) -> ModeProfile:
    """The knobs of an effective mode: the profile its row in the mode table names."""
    name = mode.spec.profile
    if name is None:
        raise PerfmodeError(f"mode {mode.value} is decided into another mode; it has no knobs")
    return cast(ModeProfile, getattr(self, name))


def _validate_profiles(self: Any) -> None:
    for f in dataclasses.fields(self):
        getattr(self, f.name).validate(f"modes.{f.name}")


def modes_config_class() -> type:
    """A profile per config profile the mode table names, defaults from the table's rows.

    Built from :data:`perfmode.base.modes.TABLE`, so a mode added there is a section here
    (and a key the YAML may set) without a line in this module.
    """
    cls = dataclasses.make_dataclass(
        "ModesConfig",
        [
            (name, ModeProfile, field(default_factory=functools.partial(ModeProfile, **defaults)))
            for name, defaults in profiles().items()
        ],
        namespace={
            "__doc__": "A profile per mode (see perfmode.base.modes.TABLE).",
            "__post_init__": _validate_profiles,
            "profile": _profile,
        },
        frozen=True,
    )
    cls.__module__ = __name__
    return cls


ModesConfig = modes_config_class()


@dataclass(frozen=True)
class AutoConfig:
    """When mode ``auto`` counts the computer as in use (then quiet) or free (performance)."""

    idle_after: float = 300.0
    """Seconds without keyboard or mouse input after which nobody counts as at the computer
    (where the platform can tell; elsewhere other programs' CPU use decides alone)."""
    foreign_cpu: float = 0.25
    """Cores other programs (not the trainers of this home's other runs) may use before the
    computer counts as in use: 0.25 = a quarter of one core."""
    resume_after: float = 60.0
    """Seconds without use before performance comes back; also the least time between two
    switches to performance, so a load wobbling around foreign_cpu cannot flap the mode."""

    def __post_init__(self) -> None:
        check(
            10 <= self.idle_after <= 86400,
            "auto.idle_after",
            self.idle_after,
            "from 10 to 86400 seconds",
        )
        check(
            0.01 <= self.foreign_cpu <= 1024,
            "auto.foreign_cpu",
            self.foreign_cpu,
            "from 0.01 to 1024 cores",
        )
        check(
            1 <= self.resume_after <= 86400,
            "auto.resume_after",
            self.resume_after,
            "from 1 to 86400 seconds",
        )


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity masks
        return os.cpu_count() or 1
