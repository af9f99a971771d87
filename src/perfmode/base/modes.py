"""The modes, as data: one row per mode says everything the rest of perfmode asks about it.

Adding a mode is one row in :data:`TABLE` plus, when the row names a ``profile``, that
profile under ``modes:`` in ``config/default_config.yaml`` and ``configs/*.yaml`` (the
defaults in the row and the YAML are kept equal by a test). The settings store, holds, the
config schema, the governor, the CLI's help, the page (its choices, help and colours) and
the plots all read this table; none of them names a mode except to pick out a particular
row (``Mode.PAUSED`` sleeps).

:class:`Mode` is a ``str`` (it is written to settings.json and status.json as is) whose
values are the table's keys; equal names give the same object, so ``is`` compares modes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class ModeSpec:
    """What one mode is."""

    help: str
    """One line under the mode's name in ``perfmode set --help`` and on the page."""
    profile: str | None
    """The ``modes.<profile>`` config section whose knobs the trainer runs in this mode;
    None for a mode that is only ever decided into another (``auto``)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The profile's default knobs (the ``ModeProfile`` fields that differ from its own
    defaults); equal to the profile in the embedded default config."""
    hold_rank: float | None = None
    """Holds: of several active ones the lowest rank wins (least demanding first, as
    power-profiles-daemon lets power-saver win over performance); None = not holdable."""
    heat_fallback: str | None = None
    """The mode whose knobs run instead while the GPU temperature guard holds; None = the
    guard never applies (the mode is the fallback already, or computes nothing)."""
    colour: str
    """Its colour, ``#rrggbb``: on the page (which lightens it in its dark theme) and, for a
    mode that computes, in the steps/s pictures."""
    decided: bool = False
    """Not a mode a trainer runs but a rule that picks one (``auto``)."""
    computes: bool = True
    """False for a mode in which the trainer sleeps at its next safe point."""


TABLE: dict[str, ModeSpec] = {
    "quiet": ModeSpec(
        help="Out of your way while you work: by default one thread, half a core.",
        profile="quiet",
        defaults={
            "torch_threads": 1,
            "cpu_share": 0.5,
            "cuda_memory_fraction": 0.5,
            "gpu_max_temp_c": None,
        },
        hold_rank=1,
        colour="#2563eb",
    ),
    "performance": ModeSpec(
        help="Flat out while you are away: the CPU other programs leave free.",
        profile="performance",
        defaults={"torch_threads": "auto", "cpu_share": 1.0},
        hold_rank=2,
        heat_fallback="quiet",
        colour="#ea580c",
    ),
    "auto": ModeSpec(
        help="Performance while the machine is idle, quiet while you use it.",
        profile=None,
        colour="#7c3aed",
        decided=True,
    ),
    "paused": ModeSpec(
        help="No CPU at all; everything stays in memory and any other mode resumes at once.",
        # It computes nothing; quiet's knobs are what its memory caps are while it sleeps.
        profile="quiet",
        hold_rank=0,
        colour="#64748b",
        computes=False,
    ),
}
"""Every mode, in the order help texts and the page list them."""


class _ModeType(type):
    def __iter__(cls) -> Iterator[Mode]:
        return iter([Mode(name) for name in TABLE])

    def __len__(cls) -> int:
        return len(TABLE)


class Mode(str, metaclass=_ModeType):
    """A mode's name; ``Mode("eco")`` raises ValueError unless :data:`TABLE` has a row for it."""

    QUIET: ClassVar[Mode]
    PERFORMANCE: ClassVar[Mode]
    AUTO: ClassVar[Mode]
    PAUSED: ClassVar[Mode]
    _made: ClassVar[dict[str, Mode]] = {}

    def __new__(cls, value: str) -> Mode:
        if isinstance(value, Mode):
            return value
        if not isinstance(value, str) or value not in TABLE:
            raise ValueError(f"{value!r} is not a valid Mode")
        made = cls._made.get(value)
        if made is None:
            made = cls._made[value] = super().__new__(cls, value)
        return made

    def __repr__(self) -> str:
        return f"Mode({str(self)!r})"

    @property
    def value(self) -> str:
        return str(self)

    @property
    def spec(self) -> ModeSpec:
        return TABLE[str(self)]


Mode.QUIET = Mode("quiet")
Mode.PERFORMANCE = Mode("performance")
Mode.AUTO = Mode("auto")
Mode.PAUSED = Mode("paused")

DEFAULT_MODE = Mode.QUIET


def mode_names() -> tuple[str, ...]:
    return tuple(TABLE)


def hold_modes() -> tuple[Mode, ...]:
    """The modes a hold may keep, the winning one first."""
    ranked = [(s.hold_rank, n) for n, s in TABLE.items() if s.hold_rank is not None]
    return tuple(Mode(n) for _, n in sorted(ranked))


def profiles() -> dict[str, Mapping[str, Any]]:
    """Each config profile the modes read, with its defaults (first row naming it wins)."""
    out: dict[str, Mapping[str, Any]] = {}
    for spec in TABLE.values():
        if spec.profile is not None and spec.profile not in out:
            out[spec.profile] = spec.defaults
    return out


def under_heat(mode: Mode) -> Mode:
    """The mode the temperature guard runs instead of ``mode`` while the GPU is hot."""
    fallback = mode.spec.heat_fallback
    return Mode(fallback) if fallback is not None else mode


def colours() -> dict[str, str]:
    """The colour of each mode a trainer computes in: what the steps/s pictures draw."""
    return {n: s.colour for n, s in TABLE.items() if s.computes and not s.decided}


def help_line() -> str:
    """The modes for a command's help: 'quiet (out of your way ...), performance (...), ...'."""
    return ", ".join(f"{n} ({s.help[0].lower()}{s.help[1:].rstrip('.')})" for n, s in TABLE.items())
