"""The trainer's status, typed: one dataclass per section of status.json.

The trainer fills a :class:`TrainerStatus` and :class:`perfmode.status.progress.StatusFile`
writes it; ``perfmode status`` (table and ``--json``), the page and the refusal to start a
run twice read it back through :meth:`TrainerStatus.from_json`. A field that does not exist
is an attribute error, not a silent miss.

status.json is a file anyone can edit, so parsing never raises: a value of the wrong type
(or NaN, or a section that is not an object) reads as None, an unknown key is dropped, a
missing one is None.

The JSON shape is the one perfmode 0.1.0 wrote: the flat sections' keys sit at the top
level, ``threads`` and ``gpu`` are objects, ``oom_events`` a list. Each key 0.1.0 wrote
(``KEYS_0_1_0``, a record of that file that never grows) is written even when None, so its
files read back as they were; every key added since is left out while it is None (a section
while all its fields are, a list while empty), so a file written without it is the same file.

Adding a field: one line ``name: type | None = None`` in its section here (a new key of a
flat section must not be a key of another flat section: a test checks) and one assignment
where the trainer knows it, plus the places that show it. A new section: a class here and
one line in :class:`TrainerStatus`; it is an object under its own name.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, ClassVar, Self


def _keys(names: str) -> frozenset[str]:
    return frozenset(names.split())


class _Section:
    """A group of scalar fields (str, int, float or bool, each or None)."""

    KEYS_0_1_0: ClassVar[frozenset[str]] = frozenset()
    """Its keys in perfmode 0.1.0's status.json: written as null when None. Never grows."""

    def to_json(self) -> dict[str, Any]:
        out = {}
        for name, _ in _kinds(type(self)):
            value = getattr(self, name)
            if value is not None or name in self.KEYS_0_1_0:
                out[name] = value
        return out

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name, _ in _kinds(type(self)))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        data = data if isinstance(data, dict) else {}
        return cls(**{name: _coerce(data.get(name), kind) for name, kind in _kinds(cls)})


@cache
def _kinds(cls: type) -> tuple[tuple[str, type], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out.append((f.name, next(a for a in args if a is not type(None))))
    return tuple(out)


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    if kind is float:
        if not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:  # a 400-digit integer
            return None
        # An int stays one: 86 °C is written back as 86, as perfmode 0.1.0 wrote it.
        return value if math.isfinite(number) else None
    return value if isinstance(value, kind) else None


GPU_METRICS_COLUMNS = [
    "gpu_util_pct",
    "gpu_mem_used_mib",
    "gpu_mem_total_mib",
    "gpu_temp_c",
    "gpu_power_w",
]
"""metrics.csv's GPU columns (empty without a reading)."""


@dataclass
class RunSection(_Section):
    pid: int | None = None
    pid_started: float | None = None
    """When that process started (seconds since the epoch): a later process given the same
    pid is not the trainer, and holds no share of the home's budget."""
    run: str | None = None
    state: str | None = None
    """training, waiting (for the home's budget), paused, stopped, finished or failed."""
    device: str | None = None
    started_at: str | None = None
    heartbeat: str | None = None
    """Set by the writer at each write."""

    KEYS_0_1_0 = _keys("pid run state device started_at heartbeat")


@dataclass
class ProgressSection(_Section):
    timesteps: int | None = None
    total_timesteps: int | None = None
    fps: float | None = None
    """Steps per second over the last update cycle."""
    eta_s: float | None = None
    eta_at: str | None = None

    KEYS_0_1_0 = _keys("timesteps total_timesteps fps eta_s eta_at")


@dataclass
class CheckpointSection(_Section):
    last_checkpoint: str | None = None
    last_checkpoint_timesteps: int | None = None

    KEYS_0_1_0 = _keys("last_checkpoint last_checkpoint_timesteps")


@dataclass
class ModeSection(_Section):
    requested_mode: str | None = None
    applied_mode: str | None = None
    mode_reason: str | None = None
    paused_since: str | None = None
    applied_at: str | None = None
    applied_during: str | None = None
    settings_problem: str | None = None

    KEYS_0_1_0 = _keys(
        "requested_mode applied_mode mode_reason paused_since applied_at applied_during "
        "settings_problem"
    )


@dataclass
class KnobsSection(_Section):
    batch_size: int | None = None
    n_epochs: int | None = None
    torch_threads: int | None = None
    cpu_share: float | None = None
    cuda_memory_fraction: float | None = None
    batch_cap: int | None = None
    payback_s: float | None = None
    """Seconds of rest the run still owes its capped share (its start-up, a long step),
    slept before it trains on; None when it owes none."""

    KEYS_0_1_0 = _keys("batch_size n_epochs torch_threads cpu_share cuda_memory_fraction batch_cap")


@dataclass
class IdleSection(_Section):
    input_idle_s: float | None = None
    input_idle_source: str | None = None
    input_idle_unknown: str | None = None

    KEYS_0_1_0 = _keys("input_idle_s input_idle_source input_idle_unknown")


@dataclass
class LoadSection(_Section):
    foreign_cpu: float | None = None
    other_trainers_cpu: float | None = None

    KEYS_0_1_0 = _keys("foreign_cpu other_trainers_cpu")


@dataclass
class ThreadsStatus(_Section):
    choice: str | None = None
    """``profile`` (a fixed count) or the measurement's state."""
    rollout: int | None = None
    update: int | None = None
    free_cores: float | None = None
    reason: str | None = None
    """Both None for a fixed count (``profile``): nothing measured to explain."""

    KEYS_0_1_0 = _keys("choice rollout update")


@dataclass
class GpuStatus(_Section):
    name: str | None = None
    util_pct: float | None = None
    mem_used_mib: float | None = None
    mem_total_mib: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    problem: str | None = None
    guard: str | None = None
    """Why quiet's knobs run while the GPU is hot; None when it is not."""
    guard_limit_c: float | None = None

    KEYS_0_1_0 = _keys(
        "name util_pct mem_used_mib mem_total_mib temp_c power_w problem guard guard_limit_c"
    )


@dataclass
class BudgetStatus(_Section):
    """This run's share of the home's budget (:mod:`perfmode.governor.budget`)."""

    state: str | None = None
    """training or waiting."""
    cpu_share: float | None = None
    cores: int | None = None
    """Cores it trains with in performance (its threads)."""
    position: int | None = None
    """1-based place in the home's line."""
    runs: int | None = None
    served: int | None = None
    reason: str | None = None


@dataclass
class OomEvent(_Section):
    at: str | None = None
    timesteps: int | None = None
    failed_batch: int | None = None
    new_batch: int | None = None

    KEYS_0_1_0 = _keys("at timesteps failed_batch new_batch")


# The sections whose keys sit at the top level, as in 0.1.0; any other is an object.
FLAT_SECTIONS = frozenset({"run", "progress", "checkpoint", "mode", "knobs", "idle", "load"})
_MAX_ITEMS = 1000  # a hand-made file with a million OOM events is read, not all of it


@dataclass
class TrainerStatus:
    """One run's status.json."""

    run: RunSection = field(default_factory=RunSection)
    progress: ProgressSection = field(default_factory=ProgressSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    mode: ModeSection = field(default_factory=ModeSection)
    knobs: KnobsSection = field(default_factory=KnobsSection)
    idle: IdleSection = field(default_factory=IdleSection)
    load: LoadSection = field(default_factory=LoadSection)
    threads: ThreadsStatus = field(default_factory=ThreadsStatus)
    gpu: GpuStatus = field(default_factory=GpuStatus)
    budget: BudgetStatus = field(default_factory=BudgetStatus)
    oom_events: list[OomEvent] = field(default_factory=list)

    KEYS_0_1_0: ClassVar[frozenset[str]] = _keys("threads gpu oom_events")
    """Its objects and lists in 0.1.0's file (besides the flat sections): written even when
    empty."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, _, is_list in _parts(type(self)):
            part = getattr(self, name)
            if name in FLAT_SECTIONS:
                out.update(part.to_json())
            elif name in self.KEYS_0_1_0 or (part if is_list else not part.is_empty()):
                out[name] = [e.to_json() for e in part] if is_list else part.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> TrainerStatus:
        data = data if isinstance(data, dict) else {}
        parts: dict[str, Any] = {}
        for name, kind, is_list in _parts(cls):
            if name in FLAT_SECTIONS:
                parts[name] = kind.from_json(data)
            elif is_list:
                items = data.get(name)
                items = items[:_MAX_ITEMS] if isinstance(items, list) else []
                parts[name] = [kind.from_json(x) for x in items if isinstance(x, dict)]
            else:
                parts[name] = kind.from_json(data.get(name))
        return cls(**parts)


@cache
def _parts(cls: type[TrainerStatus]) -> tuple[tuple[str, type[_Section], bool], ...]:
    """(name, section class, whether it is a list of them) for each of the status's fields."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint = hints[f.name]
        is_list = typing.get_origin(hint) is list
        out.append((f.name, typing.get_args(hint)[0] if is_list else hint, is_list))
    return tuple(out)


@dataclass
class RunView:
    """A run as ``perfmode status`` and the page show it: its status and whether it lives."""

    status: TrainerStatus
    running: bool = False
    """Its process lives and heartbeats."""
    alive: bool = False
    """Its process lives, responding or not: it holds its run."""
    suspended: bool = False
    """Stopped by SIGSTOP or Ctrl-Z."""
    not_responding_since: str | None = None
    """Its last heartbeat, when alive but not running."""

    def to_json(self) -> dict[str, Any]:
        return {
            **self.status.to_json(),
            "running": self.running,
            "alive": self.alive,
            "suspended": self.suspended,
            "not_responding_since": self.not_responding_since,
        }

    @classmethod
    def from_json(cls, data: Any) -> RunView:
        """Back from the JSON ``perfmode status --json`` prints (the CLI's table reads it)."""
        data = data if isinstance(data, dict) else {}
        since = data.get("not_responding_since")
        return cls(
            TrainerStatus.from_json(data),
            running=data.get("running", True) is True,
            alive=data.get("alive", True) is True,
            suspended=data.get("suspended") is True,
            not_responding_since=since if isinstance(since, str) else None,
        )


def run_keys() -> set[str]:
    """Every key a run may have in ``perfmode status --json`` and on the page, those left out
    while None included (for the check that the page's script reads only keys that exist)."""
    keys = set(RunView(TrainerStatus()).to_json())
    for name, kind, _ in _parts(TrainerStatus):
        keys |= {f.name for f in fields(kind)} if name in FLAT_SECTIONS else {name}  # type: ignore[arg-type]
    return keys
