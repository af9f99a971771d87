"""Watching one trial's trainer: its scores to Optuna as they appear, the pruner's answer,
and what the trial came to when the trainer exits.

The trainer knows nothing of Optuna; it writes ``validation.json`` and this reads it. Storage
trouble while it trains is soft (the scores wait for the next look); the scores still unsent
when it ends are the recording's business (:meth:`Sweep._record`), patient, with the result.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from perfmode.sweep.child import TrialProcess
from perfmode.sweep.study import Records

log = logging.getLogger("perfmode.sweep")


@dataclass
class Outcome:
    """What a trial came to, before it is recorded."""

    state: Any
    """Optuna's TrialState."""
    value: float | None = None
    error: str | None = None
    retry: bool = False
    """Killed, crashed or interrupted: the same values run again from its checkpoint."""
    reports: list[dict[str, Any]] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)
    """The reports Optuna has; the rest go with the result."""
    wall_s: float | None = None


def failed(error: str) -> Outcome:
    import optuna

    return Outcome(optuna.trial.TrialState.FAIL, error=error)


def watch(
    records: Records, trial: Any, child: TrialProcess, stop: threading.Event, poll: float
) -> Outcome:
    """Until ``child`` exits: its scores reported, pruned when the pruner says so, stopped
    gracefully when ``stop`` is set."""
    import optuna

    started = time.monotonic()
    sent: set[int] = set()
    pruned = False
    while child.poll() is None:
        time.sleep(poll)
        if stop.is_set():
            child.stop()
        reports, _ = child.scores()
        before = len(sent)
        storage_ok = records.report(trial, reports, sent)
        # The pruner's answer changes only with a new score: ask once per score.
        if (
            storage_ok
            and not pruned
            and len(sent) > before
            and records.soft(trial.should_prune, "ask the pruner")
        ):
            log.info("✂️  Trial %d: pruned at report %d; stopping it", trial.number, max(sent))
            pruned = True
            child.stop()
    rc = child.wait()
    reports, final = child.scores()
    out = Outcome(
        optuna.trial.TrialState.FAIL,
        reports=reports,
        sent=sent,
        wall_s=round(time.monotonic() - started, 2),
    )
    if pruned:
        out.state = optuna.trial.TrialState.PRUNED
    elif rc == 0 and final is not None:
        out.state, out.value = optuna.trial.TrialState.COMPLETE, float(final["return"])
    elif rc == 0 and child.stopping:
        out.error = "stopped before it finished (the sweep was stopped)"
    else:
        out.error = child.last_error() or f"trainer exited with {rc}"
    out.retry = out.state == optuna.trial.TrialState.FAIL and (rc != 0 or child.stopping)
    return out
