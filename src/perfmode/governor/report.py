"""The governor's sections of a trainer's status.json: what it applied, and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perfmode.base.clock import format_time
from perfmode.status.model import (
    IdleSection,
    KnobsSection,
    LoadSection,
    ModeSection,
    TrainerStatus,
)

if TYPE_CHECKING:
    from perfmode.governor.governor import Governor


def report_governor(gov: Governor, into: TrainerStatus) -> None:
    """Fill ``into``'s mode, knobs, idle, load, threads and GPU sections from ``gov``."""
    k, load = gov.knobs, gov.load.reading
    into.mode = ModeSection(
        requested_mode=gov.settings.mode.value,
        applied_mode=k.mode.value,
        mode_reason=gov.mode_reason,
        paused_since=format_time(gov.paused_since) if gov.paused_since else None,
        applied_at=format_time(gov.applied_at),
        applied_during=gov.applied_during,
        settings_problem=gov.settings.problem,
    )
    into.knobs = KnobsSection(
        batch_size=k.batch_size,
        n_epochs=k.n_epochs,
        torch_threads=gov.threads.current,
        # A waiting run sleeps at its next safe point: it gets none of the CPU, whatever
        # share its duty cycle keeps for when it trains again.
        cpu_share=0.0 if gov.waiting else gov.duty_share(),
        cuda_memory_fraction=k.cuda_memory_fraction if gov.device == "cuda" else None,
        batch_cap=gov.batch_cap,
        payback_s=round(gov.duty.pays_for, 1) if gov.duty.pays_for >= 0.5 else None,
    )
    into.idle = IdleSection(
        input_idle_s=gov.idle.reading if gov.idle.source_name else None,
        input_idle_source=gov.idle.source_name,
        input_idle_unknown=gov.idle.unknown,
    )
    into.load = LoadSection(
        foreign_cpu=load.foreign_cores if load else None,
        other_trainers_cpu=load.trainer_cores if load else None,
    )
    into.threads = gov.threads.status()
    into.gpu = gov.gpu.status()
    if gov.budget is not None:
        gov.budget.report(into)
