"""A sweep's study and its records: every storage call a sweep makes, and how it survives
the storage going away.

Two kinds of call. Those that decide what runs (count the trials, ask for one, record who
runs it, the result) are retried for up to the patience (``PERFMODE_SWEEP_PATIENCE_S``,
10 minutes), and then raise. Those made while a trial trains (its scores, the pruner's
question) are soft: a failure is logged once and tried again at the next look, so a
database that goes away never stops training.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from perfmode.base.home import Home
from perfmode.config.schema import Config
from perfmode.errors import PerfmodeError
from perfmode.sweep import trials as tr
from perfmode.sweep.storage import (
    StorageClock,
    Where,
    first_line,
    open_storage,
    retrying,
    timed_storage,
)

log = logging.getLogger("perfmode.sweep")

T = TypeVar("T")

MAX_RETRIES = 2
"""How often a trial whose trainer died is retried from its checkpoint."""


def open_study(
    w: Where,
    name: str,
    config: Config,
    *,
    seed: int | None = None,
    clock: StorageClock | None = None,
) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(w, create=True)
    if clock is not None:
        storage = timed_storage(storage, clock)
    sweep = config.sweep
    pruner: Any = optuna.pruners.NopPruner()
    if sweep.pruner == "median":
        # RL Zoo's choice: no pruning in a trial's first third of reports.
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=sweep.startup_trials, n_warmup_steps=sweep.reports // 3
        )
    sampler: Any = (
        optuna.samplers.RandomSampler(seed=seed)
        if sweep.sampler == "random"
        else optuna.samplers.TPESampler(n_startup_trials=sweep.startup_trials, seed=seed)
    )
    try:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            pruner=pruner,
            sampler=sampler,
        )
    except Exception as e:
        raise PerfmodeError(f"cannot open sweep {name!r} in {w.label}: {first_line(e)}") from None


class Records:
    """The study as a sweep process reads and writes it (thread-safe: Optuna's storages are)."""

    def __init__(self, study: Any, home: Home, patience: float) -> None:
        self.study, self.home, self.patience = study, home, patience
        self._outage = threading.Event()

    def call(self, fn: Callable[[], T], what: str) -> T:
        """A call that must land: retried for up to the patience, then a PerfmodeError."""
        return retrying(fn, what, patience=self.patience)

    def soft(self, fn: Callable[[], Any], what: str) -> Any:
        """A call that may fail without harm (False then): the trial trains on regardless."""
        try:
            result = fn()
        except Exception as e:
            if not self._outage.is_set():
                self._outage.set()
                log.warning(
                    "⚠️  sweep storage: cannot %s (%s); the trials train on, retrying",
                    what,
                    first_line(e),
                )
            return False
        if self._outage.is_set():
            self._outage.clear()
            log.info("🔌 sweep storage: back")
        return result

    # -- before trials: resume and the queue ------------------------------------------------

    def retry_dead_trials(self) -> None:
        """Running trials of this home whose sweep process is gone: failed, and queued again
        with the same values and run folder, so the retry resumes from their checkpoint (or,
        for one that finished but was never recorded, records what its folder holds)."""
        import optuna

        running = self.call(
            lambda: self.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            ),
            "list running trials",
        )
        storage = self.study._storage
        for t in running:
            attrs = t.user_attrs
            if not tr.is_ours(attrs, self.home) or tr.owner_alive(attrs):
                continue
            log.info(
                "♻️  Trial %d (%s): its sweep process ended without finishing it; marked failed "
                "and queued again to resume from its checkpoint",
                t.number,
                attrs.get("run"),
            )
            self.call(
                lambda t=t: storage.set_trial_user_attr(
                    t._trial_id, "error", "its sweep process died"
                ),
                "mark a dead trial",
            )
            self.call(
                lambda t=t: storage.set_trial_state_values(
                    t._trial_id, optuna.trial.TrialState.FAIL
                ),
                "mark a dead trial",
            )
            self.requeue(t.params, attrs)

    def requeue(self, params: dict[str, Any], attrs: dict[str, Any]) -> None:
        lineage = int(attrs.get("retries", 0)) + 1
        if lineage > MAX_RETRIES:
            log.warning("⚠️  %s failed %d times; not retried again", attrs.get("run"), lineage)
            return
        self.call(
            lambda: self.study.enqueue_trial(
                params, user_attrs={"run": attrs.get("run"), "retries": lineage}
            ),
            "queue a retry",
        )

    def enqueue_seeds(self, seeds: list[int] | None) -> None:
        for s in seeds or []:
            self.call(
                lambda s=s: self.study.enqueue_trial({tr.SEED_KEY: s}, skip_if_exists=True),
                "queue the seeds",
            )

    # -- one trial ---------------------------------------------------------------------------

    def counted(self) -> int:
        """Trials that count towards --trials, across every worker and machine (RL Zoo's
        MaxTrialsCallback): complete, pruned and running; failed ones are retried instead."""
        import optuna

        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
        )
        return len(
            self.call(lambda: self.study.get_trials(deepcopy=False, states=states), "count trials")
        )

    def ask(self) -> Any:
        return self.call(self.study.ask, "ask for a trial")

    def set_attrs(self, trial: Any, attrs: dict[str, Any], what: str) -> None:
        for k, v in attrs.items():
            self.call(lambda k=k, v=v: trial.set_user_attr(k, v), what)

    def report(
        self, trial: Any, reports: list[dict[str, Any]], sent: set[int], *, patient: bool = False
    ) -> bool:
        """Send the scores not yet in ``sent``. Soft while the trial trains (False: retried at
        the next look); ``patient`` once it has ended, raising when the storage stays away."""
        for r in reports:
            step = r["report"]
            if step in sent:
                continue

            def send(r: dict[str, Any] = r) -> bool:
                trial.report(float(r["return"]), r["report"])
                return True

            if patient:
                self.call(send, "report a score")
            elif not self.soft(send, "report a score"):
                return False
            sent.add(step)
        return True

    def tell(self, trial: Any, state: Any, value: float | None, attrs: dict[str, Any]) -> None:
        """The trial's result, with ``attrs`` (its steps, wall time, error) written first."""
        import optuna

        self.set_attrs(trial, attrs, "record the trial")
        self.call(
            lambda: self.study.tell(
                trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state
            ),
            "record the trial's result",
        )
