"""The trainer's status, typed: one dataclass per section of status.json.

The trainer fills a :class:`TrainerStatus` and :class:`perfmode.status.progress.StatusFile`
writes it; ``perfmode status`` (table and ``--json``), the page and the refusal to start a
run twice read it back through :meth:`TrainerStatus.from_json`. A field that does not exist
is an attribute error, not a silent miss.

status.json is a file anyone can edit, so parsing never raises: a value of the wrong type
(or NaN, or a section that is not an object) reads as None, an unknown key is dropped, a
missing one is None. The JSON shape is the one perfmode 0.1.0 wrote: the flat sections'
keys sit at the top level, ``threads`` and ``gpu`` are objects, ``oom_events`` a list.

Adding a field: one line in its section here, one assignment where the trainer knows it
(plus the places that show it and the README's example).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, Self


class _Section:
    """A flat group of scalar fields (str, int, float or bool, each or None)."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

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
    run: str | None = None
    state: str | None = None
    """training, paused, stopped, finished or failed."""
    device: str | None = None
    started_at: str | None = None
    heartbeat: str | None = None
    """Set by the writer at each write."""


@dataclass
class ProgressSection(_Section):
    timesteps: int | None = None
    total_timesteps: int | None = None
    fps: float | None = None
    """Steps per second over the last update cycle."""
    eta_s: float | None = None
    eta_at: str | None = None


@dataclass
class CheckpointSection(_Section):
    last_checkpoint: str | None = None
    last_checkpoint_timesteps: int | None = None


@dataclass
class ModeSection(_Section):
    requested_mode: str | None = None
    applied_mode: str | None = None
    mode_reason: str | None = None
    paused_since: str | None = None
    applied_at: str | None = None
    applied_during: str | None = None
    settings_problem: str | None = None


@dataclass
class KnobsSection(_Section):
    batch_size: int | None = None
    n_epochs: int | None = None
    torch_threads: int | None = None
    cpu_share: float | None = None
    cuda_memory_fraction: float | None = None
    batch_cap: int | None = None


@dataclass
class IdleSection(_Section):
    input_idle_s: float | None = None
    input_idle_source: str | None = None
    input_idle_unknown: str | None = None


@dataclass
class LoadSection(_Section):
    foreign_cpu: float | None = None
    other_trainers_cpu: float | None = None


@dataclass
class ThreadsStatus(_Section):
    choice: str | None = None
    """``profile`` (a fixed count) or the measurement's state."""
    rollout: int | None = None
    update: int | None = None
    free_cores: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.choice == "profile":  # a fixed count has nothing measured to explain
            del out["free_cores"], out["reason"]
        return out


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


@dataclass
class OomEvent(_Section):
    at: str | None = None
    timesteps: int | None = None
    failed_batch: int | None = None
    new_batch: int | None = None


# The flat sections, in the order their keys appear in the file.
_FLAT = ("run", "progress", "checkpoint", "mode", "knobs", "idle", "load")
_MAX_OOM_EVENTS = 1000  # a hand-made file with a million events is read, not all of it


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
    oom_events: list[OomEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _FLAT:
            out.update(getattr(self, name).to_json())
        out["threads"] = self.threads.to_json()
        out["gpu"] = self.gpu.to_json()
        out["oom_events"] = [e.to_json() for e in self.oom_events]
        return out

    @classmethod
    def from_json(cls, data: Any) -> TrainerStatus:
        data = data if isinstance(data, dict) else {}
        hints = typing.get_type_hints(cls)
        sections = {name: hints[name].from_json(data) for name in _FLAT}
        events = data.get("oom_events")
        events = events[:_MAX_OOM_EVENTS] if isinstance(events, list) else []
        return cls(
            **sections,
            threads=ThreadsStatus.from_json(data.get("threads")),
            gpu=GpuStatus.from_json(data.get("gpu")),
            oom_events=[OomEvent.from_json(e) for e in events if isinstance(e, dict)],
        )


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


# Keys of a run in `perfmode status --json` and the page, for the check that the page's
# script reads only keys that exist.
def run_keys() -> set[str]:
    return set(RunView(TrainerStatus(threads=ThreadsStatus(choice="auto"))).to_json())
