"""``perfmode sweep NAME``: workers asking Optuna for trials and running each as a governed run.

One process per machine (or several: they share the study through the storage). It starts
``jobs`` workers, threads that each loop: count the study's trials (complete, pruned and
running, across every worker and machine, like RL Zoo's MaxTrialsCallback), ask for one,
write its config, run ``perfmode train`` on it, pass its validation scores to Optuna as they
appear, stop it gracefully when the pruner says so, and tell the result. How many trainers
compute at once is the home's business (mode, budget): extra workers' trainers wait.

Storage trouble during a trial is retried while the trainer goes on training; only the
result of a trial waits for the storage to come back (up to ``tell_patience`` seconds), and
if it never does the run folder with its checkpoints is kept for the next sweep to record.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from perfmode.base.home import Home
from perfmode.config.schema import Config
from perfmode.errors import PerfmodeError
from perfmode.sweep import trials as tr
from perfmode.sweep.child import TrialProcess, steps_of, wait_for_run_lock
from perfmode.sweep.storage import StorageClock, Where, open_storage, retrying

log = logging.getLogger("perfmode.sweep")

MAX_RETRIES = 2
"""How often a trial whose trainer died is retried from its checkpoint."""


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
    patience: float = 600.0
    """Seconds a trial's result waits for a storage that went away."""


@dataclass
class SweepResult:
    ran: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    unrecorded: list[str] = field(default_factory=list)


def open_study(w: Where, name: str, config: Config, *, seed: int | None = None) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(w, create=True)
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
        from perfmode.sweep.storage import _first_line

        raise PerfmodeError(f"cannot open sweep {name!r} in {w.label}: {_first_line(e)}") from None


class Sweep:
    def __init__(self, home: Home, config: Config, w: Where, options: SweepOptions) -> None:
        self.home, self.config, self.where, self.opt = home, config, w, options
        self.study = open_study(w, options.name, config, seed=options.seed)
        self.identity = tr.identity(home)
        self.stop = threading.Event()
        self.result = SweepResult()
        self._lock = threading.Lock()
        self._clocks = threading.local()
        self._outage = threading.Event()

    @property
    def clock(self) -> StorageClock:
        """This worker's time waiting on the storage: a trial's own cost, not its neighbours'."""
        clock = getattr(self._clocks, "clock", None)
        if clock is None:
            clock = self._clocks.clock = StorageClock()
        return clock

    # -- the whole sweep ---------------------------------------------------------------

    def run(self) -> SweepResult:
        self._retry_dead_trials()
        self._enqueue_seeds()
        workers = [
            threading.Thread(target=self._worker, name=f"sweep-worker-{i}", daemon=True)
            for i in range(self.opt.jobs)
        ]
        with self._stop_on_signals():
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=0.2)
        return self.result

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if not self.stop.is_set():
                log.info(
                    "🛑 %s: stopping the trials at their next safe point (they resume with "
                    "the same command)",
                    signal.Signals(signum).name,
                )
            self.stop.set()

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _call(self, fn: Any, what: str, patience: float | None = None) -> Any:
        return retrying(
            fn,
            what,
            patience=self.opt.patience if patience is None else patience,
            clock=self.clock,
        )

    def _retry_dead_trials(self) -> None:
        """Running trials of this home whose sweep process is gone: failed, and queued again
        with the same values and run folder, so the retry resumes from their checkpoint."""
        import optuna

        running = self._call(
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
            self._call(
                lambda t=t: storage.set_trial_user_attr(
                    t._trial_id, "error", "its sweep process died"
                ),
                "mark a dead trial",
            )
            self._call(
                lambda t=t: storage.set_trial_state_values(
                    t._trial_id, optuna.trial.TrialState.FAIL
                ),
                "mark a dead trial",
            )
            self._requeue(t.params, attrs)

    def _requeue(self, params: dict[str, Any], attrs: dict[str, Any]) -> None:
        lineage = int(attrs.get("retries", 0)) + 1
        if lineage > MAX_RETRIES:
            log.warning("⚠️  %s failed %d times; not retried again", attrs.get("run"), lineage)
            return
        self._call(
            lambda: self.study.enqueue_trial(
                params, user_attrs={"run": attrs.get("run"), "retries": lineage}
            ),
            "queue a retry",
        )

    def _enqueue_seeds(self) -> None:
        seeds = self.config.sweep.seed_list
        if not seeds:
            return
        for s in seeds:
            self._call(
                lambda s=s: self.study.enqueue_trial({tr.SEED_KEY: s}, skip_if_exists=True),
                "queue the seeds",
            )

    def _counted(self) -> int:
        import optuna

        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
        )
        return len(
            self._call(lambda: self.study.get_trials(deepcopy=False, states=states), "count trials")
        )

    # -- one worker ---------------------------------------------------------------------

    def _worker(self) -> None:
        while not self.stop.is_set():
            try:
                with self._lock:  # one ask at a time in this process: the count stays true
                    if self._counted() >= self.opt.trials:
                        return
                    trial = self._call(self.study.ask, "ask for a trial")
                self._run_trial(trial)
            except PerfmodeError as e:
                log.error("❌ %s", e)
                self.stop.set()
                return
            except Exception as e:  # a worker that dies silently would leave the sweep hung
                log.error("❌ sweep worker stopped: %s: %s", type(e).__name__, e)
                self.stop.set()
                return

    def _run_trial(self, trial: Any) -> None:
        import optuna

        attrs = dict(trial.user_attrs)
        run = attrs.get("run") or tr.run_name(self.opt.name, trial.number)
        try:
            values = tr.suggest(trial, self.config.sweep)
            cfg = tr.trial_config(self.config, values, self.opt.timesteps, self.opt.data)
        except PerfmodeError as e:
            self._tell(trial, optuna.trial.TrialState.FAIL, None, run, error=str(e))
            return
        self.home.make_run_dir(run)
        path = self.home.run_dir(run) / tr.TRIAL_CONFIG
        tr.write_trial_config(
            path,
            cfg,
            f"Trial {trial.number} of sweep {self.opt.name!r}: `perfmode train --run {run} "
            f"--config {path}` trains exactly this.\nValues sampled: {values}",
        )
        ident = {**self.identity, "run": run, "retries": int(attrs.get("retries", 0))}
        for k, v in ident.items():
            self._call(lambda k=k, v=v: trial.set_user_attr(k, v), "record who runs the trial")
        if attrs.get("run") and not wait_for_run_lock(self.home, run):
            self._tell(trial, optuna.trial.TrialState.FAIL, None, run, error="run still locked")
            return
        log.info("🧪 Trial %d: %s %s", trial.number, run, _short(values))
        self._watch(trial, TrialProcess(self.home, run, path), run, ident)

    def _watch(self, trial: Any, child: TrialProcess, run: str, ident: dict[str, Any]) -> None:
        import optuna

        spent0 = self.clock.seconds
        started = time.monotonic()
        sent: set[int] = set()
        pruned = False
        while child.poll() is None:
            time.sleep(self.opt.poll)
            if self.stop.is_set():
                child.stop()
            reports, _ = child.scores()
            before = len(sent)
            storage_ok = self._report(trial, reports, sent)
            # The pruner's answer changes only with a new score: ask once per score.
            if (
                storage_ok
                and not pruned
                and len(sent) > before
                and self._soft(trial.should_prune, "ask the pruner")
            ):
                log.info("✂️  Trial %d: pruned at report %d; stopping it", trial.number, max(sent))
                pruned = True
                child.stop()
        rc = child.wait()
        reports, final = child.scores()
        self._report(trial, reports, sent, patient=True)
        wall = time.monotonic() - started
        extra = {
            "steps": steps_of(self.home, run),
            "wall_s": round(wall, 2),
            "storage_s": round(self.clock.seconds - spent0, 4),
        }
        state, value, error = optuna.trial.TrialState.FAIL, None, None
        if pruned:
            state = optuna.trial.TrialState.PRUNED
        elif rc == 0 and final is not None:
            state, value = optuna.trial.TrialState.COMPLETE, float(final["return"])
        elif rc == 0 and child.stopping:
            error = "stopped before it finished (the sweep was stopped)"
        else:
            error = child.last_error() or f"trainer exited with {rc}"
        self._tell(trial, state, value, run, error=error, extra=extra)
        if state == optuna.trial.TrialState.FAIL and (rc != 0 or child.stopping):
            # Killed, crashed or interrupted: the same values resume from its checkpoint.
            self._requeue(trial.params, ident)

    def _soft(self, fn: Any, what: str) -> Any:
        """A storage call that may fail without harm: the trial trains on regardless."""
        from perfmode.sweep.storage import _first_line

        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as e:
            if not self._outage.is_set():
                self._outage.set()
                log.warning(
                    "⚠️  sweep storage: cannot %s (%s); the trials train on, retrying",
                    what,
                    _first_line(e),
                )
            return False
        finally:
            self.clock.seconds += time.monotonic() - t0
        if self._outage.is_set():
            self._outage.clear()
            log.info("🔌 sweep storage: back")
        return result

    def _report(
        self, trial: Any, reports: list[dict[str, Any]], sent: set[int], patient: bool = False
    ) -> bool:
        for r in reports:
            step = r["report"]
            if step in sent:
                continue
            if patient:
                self._call(lambda r=r: trial.report(float(r["return"]), r["report"]), "report")
            elif self._soft(
                lambda r=r: trial.report(float(r["return"]), r["report"]) or True, "report a score"
            ):
                pass
            else:
                return False  # retried at the next look
            sent.add(step)
        return True

    def _tell(
        self,
        trial: Any,
        state: Any,
        value: float | None,
        run: str,
        *,
        error: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        import optuna

        try:
            for k, v in {**(extra or {}), **({"error": error} if error else {})}.items():
                self._call(lambda k=k, v=v: trial.set_user_attr(k, v), "record the trial")
            self._call(
                lambda: self.study.tell(
                    trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state
                ),
                "record the trial's result",
            )
        except PerfmodeError as e:
            with self._lock:
                self.result.unrecorded.append(run)
            log.error("❌ Trial %d (%s): %s; its run folder is kept", trial.number, run, e)
            return
        with self._lock:
            self.result.ran += 1
            if state == optuna.trial.TrialState.COMPLETE:
                self.result.complete += 1
                log.info("✅ Trial %d: validation return %.2f%%", trial.number, value * 100)
            elif state == optuna.trial.TrialState.PRUNED:
                self.result.pruned += 1
            else:
                self.result.failed += 1
                log.warning("⚠️  Trial %d failed: %s", trial.number, error)


def _short(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.split('.', 1)[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
        for k, v in values.items()
    )
