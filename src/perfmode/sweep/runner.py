"""``perfmode sweep NAME``: workers asking Optuna for trials and running each as a governed run.

One process per machine (or several: they share the study through the storage). It starts
``jobs`` workers, threads that each loop: count the study's trials (complete, pruned and
running, across every worker and machine, like RL Zoo's MaxTrialsCallback), ask for one,
write its config, run ``perfmode train`` on it, pass its validation scores to Optuna as they
appear (:mod:`perfmode.sweep.watch`), stop it gracefully when the pruner says so, and record
the result (:mod:`perfmode.sweep.study`). How many trainers compute at once is the home's
business (mode, budget): extra workers' trainers wait.

Storage trouble during a trial is retried while the trainer goes on training; only the
result of a trial waits for the storage to come back (up to ``patience`` seconds), and if it
never does the run folder with its checkpoints is kept for the next sweep to record, and
the sweep says so (:attr:`SweepResult.unrecorded`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.home import Home
from perfmode.base.platform import on_stop_signals
from perfmode.config.schema import Config
from perfmode.errors import PerfmodeError
from perfmode.sweep import trials as tr
from perfmode.sweep.child import TrialProcess, steps_of, wait_for_run_lock
from perfmode.sweep.show import summary
from perfmode.sweep.snapshot import needs_snapshot, write_snapshot
from perfmode.sweep.storage import DEFAULT_PATIENCE_S, StorageClock, Where, first_line
from perfmode.sweep.study import Records, open_study
from perfmode.sweep.watch import Outcome, failed, watch

log = logging.getLogger("perfmode.sweep")

SNAPSHOT_EVERY_S = 10.0
"""How often a sweep whose study the page cannot open refreshes its snapshot besides each
trial's result (:mod:`perfmode.sweep.snapshot`)."""

COST_FILE = "trial_cost.json"
"""In a trial's run folder: its wall time and every storage call it made (the benchmark's
"storage cost"), written once the result is recorded, so the result's own calls count."""


@dataclass
class SweepOptions:
    name: str
    trials: int
    timesteps: int
    jobs: int
    data: str | None = None
    seed: int | None = None
    """Seed of the sampler (the trials' own seeds are training.seed)."""
    poll: float = 0.5
    patience: float = DEFAULT_PATIENCE_S
    """Seconds a trial's result waits for a storage that went away."""


@dataclass
class SweepResult:
    ran: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    unrecorded: list[str] = field(default_factory=list)
    """Runs whose result the storage never took: their folders wait for the next sweep."""
    error: str | None = None
    """Why a worker stopped the sweep, when one did."""


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """A stop signal (Ctrl-C, SIGTERM, Windows' Ctrl-Break) sets ``stop``: the trials stop at
    their next safe point. Only the main thread may install handlers; elsewhere, nothing."""

    def handler(signum: int, frame: Any) -> None:
        if not stop.is_set():
            log.info(
                "🛑 %s: stopping the trials at their next safe point (they resume with "
                "the same command)",
                signal.Signals(signum).name,
            )
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with on_stop_signals(handler):
        yield


class Sweep:
    """The worker pool of one sweep process."""

    def __init__(self, home: Home, config: Config, w: Where, options: SweepOptions) -> None:
        self.home, self.config, self.where, self.opt = home, config, w, options
        self.clock = StorageClock()
        self.study = open_study(w, options.name, config, seed=options.seed, clock=self.clock)
        self.records = Records(self.study, home, options.patience)
        self.identity = tr.identity(home)
        self.stop = threading.Event()
        self.result = SweepResult()
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot = needs_snapshot(home, w, options.name)

    def run(self) -> SweepResult:
        self.records.retry_dead_trials()
        self.records.enqueue_seeds(self.config.sweep.seed_list)
        self.write_snapshot()
        workers = [
            threading.Thread(target=self._worker, name=f"sweep-worker-{i}", daemon=True)
            for i in range(self.opt.jobs)
        ]
        with stop_on_signals(self.stop):
            for w in workers:
                w.start()
            refresh = time.monotonic() + SNAPSHOT_EVERY_S
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=0.2)
                if time.monotonic() >= refresh:  # running trials' steps, other machines' trials
                    self.write_snapshot()
                    refresh = time.monotonic() + SNAPSHOT_EVERY_S
        self.write_snapshot()
        return self.result

    def write_snapshot(self) -> None:
        """For the page, a study it cannot open itself (:mod:`perfmode.sweep.snapshot`)."""
        if not self._snapshot:
            return
        with self._snapshot_lock:
            try:
                write_snapshot(self.home, self.opt.name, summary(self.study, self.where))
            except Exception as e:  # the page's copy: never a trial's or the sweep's failure
                log.debug("sweep snapshot not written: %s", first_line(e))

    def _worker(self) -> None:
        while not self.stop.is_set():
            try:
                started, spent = time.monotonic(), self.clock.now()
                with self._lock:  # one ask at a time in this process: the count stays true
                    if self.records.counted() >= self.opt.trials:
                        return
                    trial = self.records.ask()
                if not self._run_trial(trial, started, spent):
                    return  # the storage is gone past patience: no new trial from here
            except Exception as e:  # a worker that dies silently would leave the sweep hung
                said = str(e) if isinstance(e, PerfmodeError) else f"{type(e).__name__}: {e}"
                log.error("❌ sweep worker stopped: %s", said)
                with self._lock:
                    self.result.error = self.result.error or said
                self.stop.set()
                return

    def _run_trial(self, trial: Any, started: float, spent: tuple[float, int]) -> bool:
        """Run and record one trial; False when its result could not be recorded."""
        attrs = dict(trial.user_attrs)
        run = attrs.get("run") or tr.run_name(self.opt.name, trial.number)
        ident = {**self.identity, "run": run, "retries": int(attrs.get("retries", 0))}
        try:
            values = tr.suggest(trial, self.config.sweep)
            cfg = tr.trial_config(self.config, values, self.opt.timesteps, self.opt.data)
        except PerfmodeError as e:
            return self._record(trial, failed(str(e)), run, ident)
        self.home.make_run_dir(run)
        path = self.home.run_dir(run) / tr.TRIAL_CONFIG
        tr.write_trial_config(
            path,
            cfg,
            f"Trial {trial.number} of sweep {self.opt.name!r}: `perfmode train --run {run} "
            f"--config {path}` trains exactly this.\nValues sampled: {values}",
        )
        self.records.set_attrs(trial, ident, "record who runs the trial")
        if attrs.get("run") and not wait_for_run_lock(self.home, run):
            return self._record(trial, failed("run still locked"), run, ident)
        log.info("🧪 Trial %d: %s %s", trial.number, run, _short(values))
        child = TrialProcess(self.home, run, path)
        outcome = watch(self.records, trial, child, self.stop, self.opt.poll)
        if not self._record(trial, outcome, run, ident):
            return False
        self._write_cost(trial.number, run, started, spent)
        self.write_snapshot()
        return True

    def _record(self, trial: Any, out: Outcome, run: str, ident: dict[str, Any]) -> bool:
        """The scores still unsent, then the result, each waiting for the storage up to the
        patience; past it, the run is listed as unrecorded (its folder waits for the next
        sweep, which finds the trial's sweep process gone and records what the folder holds)."""
        import optuna

        attrs: dict[str, Any] = {}
        if out.wall_s is not None:  # its trainer ran
            attrs.update(steps=steps_of(self.home, run), wall_s=out.wall_s)
        if out.error:
            attrs["error"] = out.error
        try:
            self.records.report(trial, out.reports, out.sent, patient=True)
            self.records.tell(trial, out.state, out.value, attrs)
        except Exception as e:  # past the patience, or a storage failing some other way
            said = str(e) if isinstance(e, PerfmodeError) else first_line(e)
            with self._lock:
                self.result.unrecorded.append(run)
            log.error("❌ Trial %d (%s): %s; its run folder is kept", trial.number, run, said)
            return False
        with self._lock:
            self.result.ran += 1
            if out.state == optuna.trial.TrialState.COMPLETE:
                self.result.complete += 1
                log.info("✅ Trial %d: validation return %.2f%%", trial.number, out.value * 100)
            elif out.state == optuna.trial.TrialState.PRUNED:
                self.result.pruned += 1
            else:
                self.result.failed += 1
                log.warning("⚠️  Trial %d failed: %s", trial.number, out.error)
        if out.retry:
            self.records.requeue(trial.params, ident)
        return True

    def _write_cost(self, number: int, run: str, started: float, spent: tuple[float, int]) -> None:
        seconds, calls = self.clock.now()
        cost = {
            "trial": number,
            "wall_s": round(time.monotonic() - started, 3),
            "storage_s": round(seconds - spent[0], 4),
            "storage_calls": calls - spent[1],
        }
        with contextlib.suppress(OSError):  # a figure for the benchmark, never a trial's failure
            atomic_write_bytes(self.home.run_dir(run) / COST_FILE, json.dumps(cost).encode())


def _short(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.split('.', 1)[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
        for k, v in values.items()
    )
