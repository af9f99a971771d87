"""One ``learn()`` call's companions, wired: the governor, checkpoints, status and metrics.

Each job is its own callback (:mod:`perfmode.training.callbacks`); the session builds them
and the status they share, hands the model its OOM retry, and ends the run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO

from perfmode.base.clock import utc_now
from perfmode.base.home import Home
from perfmode.checkpoint.folders import Checkpoint
from perfmode.checkpoint.io import TrainingState
from perfmode.config.schema import Config
from perfmode.env import Market
from perfmode.errors import PerfmodeError
from perfmode.governor.governor import Governor
from perfmode.governor.homebudget import HomeBudget
from perfmode.governor.peers import HomePeers
from perfmode.settings.store import SettingsStore
from perfmode.status.model import (
    CheckpointSection,
    OomEvent,
    ProgressSection,
    RunSection,
    TrainerStatus,
)
from perfmode.status.progress import MetricsCsv, StatusFile
from perfmode.status.progressbar import TrainProgress
from perfmode.training.callbacks import (
    CheckpointingCallback,
    GoverningCallback,
    ReportingCallback,
    session_callbacks,
)
from perfmode.training.governed import GovernedPPO, HalveBatchOnOom
from perfmode.training.stop import StopRequest
from perfmode.training.validation import Pace, ValidatingCallback, ValidationReports

log = logging.getLogger("perfmode.train")


@dataclass(frozen=True)
class TrainResult:
    timesteps: int
    checkpoint: Path | None
    stopped_early: bool
    resumed_from: int | None


class TrainingSession:
    """Everything one ``learn()`` call needs besides the model: governor, saves, reports."""

    def __init__(
        self,
        config: Config,
        home: Home,
        run: str,
        model: GovernedPPO,
        venv: Any,
        market: Market,
        device: str,
        resumed_from: Checkpoint | None = None,
        *,
        progress_bar: bool = False,
        started_cpu: float | None = None,
    ) -> None:
        self.config, self.model, self.venv = config, model, venv
        self.stop = StopRequest()
        self.status = StatusFile(
            home.status_file(run), _first_status(config, run, model, device, resumed_from)
        )
        peers = HomePeers(home)
        self.governor = Governor(
            SettingsStore(home.settings),
            config,
            device=device,
            on_poll=self._on_poll,
            on_pause=self._at_pause,
            should_stop=lambda: self.stop.requested,
            trainers=peers.pids,
            budget=HomeBudget(run, peers, self._cores_wanted),
            started_cpu=started_cpu,
        )
        self.progress = TrainProgress(
            config.training.total_timesteps, model.num_timesteps, terminal=progress_bar
        )
        self.governing = GoverningCallback(self.governor, self.stop)
        self.reporting = ReportingCallback(
            self.status, _metrics(home, run, model.num_timesteps), self.progress, self.governor
        )
        self.checkpointing = CheckpointingCallback(
            config,
            run,
            home.checkpoints_dir(run),
            venv,
            market,
            self.governor,
            self.status,
            resumed_from,
        )
        pace = Pace(tick=self.governor.tick, stopped=lambda: self.stop.requested)
        self.validating = ValidatingCallback(
            ValidationReports(home.run_dir(run), config, model.num_timesteps, pace), venv, market
        )
        self.callback = session_callbacks(
            self.governing, self.reporting, self.checkpointing, self.validating
        )
        model.oom_handler = HalveBatchOnOom(
            model, self.governor, config, on_event=self._on_oom, on_fatal=self._fatal_oom
        )
        model.nonfinite_handler = self._nonfinite
        self._on_poll()
        self.status.write()

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self.checkpointing.last_checkpoint

    def save(self, state: TrainingState | None = None, final: bool = False) -> Checkpoint:
        """Write ``state`` (default: the model as it is now) as a checkpoint; prune old ones."""
        return self.checkpointing.save(self.model, state, final)

    def _cores_wanted(self) -> int:
        """The cores this run trains with in performance, for the home's budget."""
        if not hasattr(self, "governor"):  # the governor's own first look
            return 1
        threads = self.governor.threads.status()
        return max(n for n in (threads.rollout, threads.update, 1) if type(n) is int)

    def _on_poll(self) -> None:
        self.checkpointing.collect_written()
        self.reporting.poll(self.model.num_timesteps)

    def _at_pause(self) -> None:
        """Entering ``paused`` or a wait for the home's budget: a checkpoint if the last is old; then the governor sleeps."""
        self.checkpointing.at_pause(self.model)
        self._on_poll()
        self.status.maybe_write(force=True)

    def _on_oom(self, event: OomEvent) -> None:
        s = self.status.status
        s.oom_events.append(event)
        self.governor.report(s)
        self.status.maybe_write(force=True)

    def _fatal_oom(self) -> str:
        ckpt = self.save()
        self.reporting.failed()
        return str(ckpt.path)

    def _nonfinite(self, error: PerfmodeError) -> PerfmodeError:
        """An update undone for NaN: nothing is saved, the last checkpoint stays the newest."""
        self.reporting.failed()
        # A write still in flight holds a boundary from before the bad update: let it land.
        with contextlib.suppress(PerfmodeError):
            self.checkpointing.collect_written(wait=True)
        last = self.last_checkpoint
        kept = (
            f"the last good checkpoint, {last.path.name} ({last.timesteps:,} steps), is kept"
            if last
            else "no checkpoint was written"
        )
        return PerfmodeError(
            f"{error}; {kept}. Check the data for extreme prices or lower ppo.learning_rate, "
            "then run `perfmode train` again to resume"
        )

    def finish(self, resumed_from: int | None) -> TrainResult:
        self.governing.remove_hooks()
        self.checkpointing.collect_written(wait=True)  # the last background write first
        model = self.model
        stopped = self.stop.requested and model.num_timesteps < self.config.training.total_timesteps
        last, boundary = self.last_checkpoint, self.checkpointing.boundary
        if stopped and boundary is not None:
            # learn() stopped inside a rollout that was never trained on: save the state of
            # the boundary before it, so a resume redoes that rollout exactly.
            model.num_timesteps = boundary.num_timesteps
            if last and last.timesteps == boundary.num_timesteps and not last.legacy:
                ckpt = last  # that very state is on disk already
            else:
                ckpt = self.save(boundary)
        else:
            self.reporting.record_update(model)
            if not stopped:
                self.validating.at_finish(model)
            ckpt = self.save(final=not stopped)
        self.reporting.end("stopped" if stopped else "finished", model.num_timesteps)
        self.venv.close()
        steps = f"{model.num_timesteps:,}"
        if stopped:
            log.info("✅ Stopped at %s steps; run `perfmode train` again to resume", steps)
        else:
            log.info(
                "✅ Finished: %s steps (target %s)",
                steps,
                f"{self.config.training.total_timesteps:,}",
            )
        return TrainResult(model.num_timesteps, ckpt.path, stopped, resumed_from)


def _first_status(
    config: Config, run: str, model: PPO, device: str, last: Checkpoint | None
) -> TrainerStatus:
    return TrainerStatus(
        run=RunSection(run=run, state="training", device=device, started_at=utc_now().isoformat()),
        progress=ProgressSection(
            timesteps=model.num_timesteps, total_timesteps=config.training.total_timesteps
        ),
        checkpoint=CheckpointSection(
            last_checkpoint=str(last.path) if last else None,
            last_checkpoint_timesteps=last.timesteps if last else None,
        ),
    )


def _metrics(home: Home, run: str, timesteps: int) -> MetricsCsv:
    metrics = MetricsCsv(home.metrics_file(run))
    # Rows past the step this run starts from describe updates whose weights were lost
    # (a kill, a damaged newer checkpoint): they go, so timesteps never repeat.
    dropped = metrics.continue_from(timesteps)
    if dropped:
        log.info(
            "📈 metrics.csv: %d row(s) past %s steps were from work lost when the run "
            "stopped; moved to %s",
            dropped.rows,
            f"{timesteps:,}",
            dropped.path,
        )
    return metrics
