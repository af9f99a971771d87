"""The trainer's three jobs inside SB3's loop, one callback each, in one ``CallbackList``.

    collect_rollouts()   on_rollout_start → [on_step ×n] → on_rollout_end
    train()              [optimizer step hook ×(epochs × minibatches)]

``on_rollout_start`` is the safe point: the last update is done, so weights, counters and
normalisation statistics agree, and that is where checkpoints are written.

The list's order is the order of the work at each boundary (:func:`session_callbacks`):
the governor ends the phase that just finished, the reporter writes the update's metrics
row, the checkpointer saves, and only then the governor starts the next phase, so that a
checkpoint's write counts in neither phase's thread timing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from perfmode import __version__
from perfmode.base.clock import utc_now
from perfmode.checkpoint.folders import Checkpoint, prune_checkpoints, save_checkpoint
from perfmode.checkpoint.io import TrainingState
from perfmode.checkpoint.state import capture
from perfmode.checkpoint.writer import BackgroundWriter, WriteFailed
from perfmode.config.schema import Config, config_to_mapping
from perfmode.env import Market
from perfmode.errors import PerfmodeError
from perfmode.governor.governor import Governor
from perfmode.status.model import CheckpointSection
from perfmode.status.progress import CpuMeter, MetricsCsv, StatusFile
from perfmode.status.progressbar import TrainProgress
from perfmode.training.stop import StopRequest

log = logging.getLogger("perfmode.train")


class GoverningCallback(BaseCallback):
    """The governor's ticks (every env step and optimizer step) and its phases."""

    def __init__(self, governor: Governor, stop: StopRequest) -> None:
        super().__init__()
        self.governor = governor
        self.stop = stop
        self.phase_start = _PhaseStart(governor)
        """Goes last in the list: the next phase starts after the others' work."""
        self._hook: Any = None

    def _on_training_start(self) -> None:
        gov = self.governor
        # A tick after every minibatch step: a switch lands mid-update too.
        self._hook = self.model.policy.optimizer.register_step_post_hook(lambda *_: gov.tick())

    def _on_rollout_start(self) -> None:
        self.governor.end_phase()  # the update just done: timed before a checkpoint is written

    def _on_step(self) -> bool:
        self.governor.tick()
        return not self.stop.requested

    def _on_rollout_end(self) -> None:
        self.governor.end_phase()
        self.governor.apply_update_knobs(self.model)

    def remove_hooks(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class _PhaseStart(BaseCallback):
    def __init__(self, governor: Governor) -> None:
        super().__init__()
        self.governor = governor

    def _on_rollout_start(self) -> None:
        # The safe point, after any checkpoint that was due: a run the home's budget has no
        # room for waits here.
        self.governor.wait_for_turn()
        self.governor.start_phase("rollout")

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.governor.start_phase("update")


class ReportingCallback(BaseCallback):
    """status.json (live, through its one writer), metrics.csv (a row per update), the bar."""

    def __init__(
        self, status: StatusFile, metrics: MetricsCsv, progress: TrainProgress, governor: Governor
    ) -> None:
        super().__init__()
        self.status, self.metrics, self.progress, self.governor = (
            status,
            metrics,
            progress,
            governor,
        )
        self.cpu = CpuMeter()
        self._update_clock: tuple[float, int] | None = None
        # The mode the update in flight started in: its metrics row is written when it ends,
        # after a switch may have changed the governor's mode (batch and epochs stay on the
        # model until the next update; an OOM retry changes the batch, and the row says so).
        self._update_mode: str | None = None

    def poll(self, steps: int) -> None:
        """At every governor poll: the governor's sections, the steps, the bar."""
        s = self.status.status
        self.governor.report(s)
        self.progress.update(steps, self.governor.knobs.mode.value)
        if s.mode.paused_since:
            s.run.state = "paused"
        else:
            s.run.state = "waiting" if self.governor.waiting else "training"
        s.progress.timesteps = steps
        self.status.maybe_write()

    def _on_rollout_start(self) -> None:
        self.record_update(self.model)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self._update_mode = self.governor.knobs.mode.value  # right before the update

    def _on_training_end(self) -> None:
        self.progress.update(self.num_timesteps, self.governor.knobs.mode.value)

    def record_update(self, model: PPO) -> None:
        """A metrics row for the update that just ended (none before the first one)."""
        now, steps = time.monotonic(), model.num_timesteps
        progress = self.status.status.progress
        if self._update_clock is not None and steps > self._update_clock[1]:
            t0, s0 = self._update_clock
            fps = round((steps - s0) / max(now - t0, 1e-9), 1)
            progress.fps = fps
            self.progress.report(progress)
            self.metrics.append(
                {
                    "time": utc_now().isoformat(timespec="seconds"),
                    "timesteps": steps,
                    "mode": self._update_mode or self.governor.knobs.mode.value,
                    "mode_reason": self.governor.mode_reason,
                    "batch_size": model.batch_size,
                    "n_epochs": model.n_epochs,
                    "fps": fps,
                    "cpu_cores": round(self.cpu.read(), 3),
                    "ep_rew_mean": _ep_rew_mean(model),
                    **self.governor.gpu.reading.metrics_row(),
                }
            )
        self._update_clock = (now, steps)
        progress.timesteps = steps

    def end(self, state: str, timesteps: int) -> None:
        s = self.status.status
        s.run.state = state
        s.progress.timesteps = timesteps
        s.progress.eta_s = s.progress.eta_at = None
        self.status.write()

    def failed(self) -> None:
        self.status.status.run.state = "failed"
        with contextlib.suppress(OSError):  # the same disk as a failed save, most likely
            self.status.write()


class CheckpointingCallback(BaseCallback):
    """A checkpoint every ``checkpoint_freq`` steps, at a rollout boundary; old ones pruned."""

    def __init__(
        self,
        config: Config,
        run: str,
        ckpt_dir: Path,
        venv: Any,
        market: Market,
        governor: Governor,
        status: StatusFile,
        last: Checkpoint | None,
    ) -> None:
        super().__init__()
        self.config, self.run, self.ckpt_dir = config, run, ckpt_dir
        self.venv, self.market, self.governor, self.status = venv, market, governor, status
        self.last_checkpoint = last
        # The state at the last rollout boundary: what a stop in the next rollout saves.
        self.boundary: TrainingState | None = None
        # Checkpoints at rollout boundaries are written while the next rollout runs.
        self.writer = BackgroundWriter(self._write)
        self._saved_steps = last.timesteps if last else 0

    def _on_rollout_start(self) -> None:
        """Between two updates: weights, counters and normalisation agree; safe to save."""
        self.boundary = capture(self.model, self.venv)
        freq = self.config.training.checkpoint_freq
        if self.model.num_timesteps // freq > self._saved_steps // freq:
            self.save_in_background(self.boundary)
        self.status.maybe_write(force=True)

    def _on_step(self) -> bool:
        return True

    def at_pause(self, model: PPO) -> None:
        """Entering ``paused``: keep a checkpoint no older than checkpoint_freq steps, so
        a shutdown while paused loses nothing."""
        b = self.boundary
        if (
            b is not None
            and b.num_timesteps - self._saved_steps >= self.config.training.checkpoint_freq
        ):
            self.save(model, b)

    def save(
        self, model: PPO, state: TrainingState | None = None, final: bool = False
    ) -> Checkpoint:
        """Write ``state`` (default: the model as it is now) as a checkpoint, after any
        background write; prune old ones."""
        self.collect_written(wait=True)
        state = state or capture(model, self.venv)
        try:
            ckpt = self._write(state, self._meta(final))
        except OSError as e:
            raise self._save_failed(state.num_timesteps, e) from None
        self._saved(ckpt)
        return ckpt

    def save_in_background(self, state: TrainingState) -> None:
        """Start writing ``state`` as a checkpoint; training goes on meanwhile."""
        try:
            done = self.writer.submit(state, self._meta(final=False))
        except WriteFailed as e:
            raise self._save_failed(e.timesteps, e.error) from None
        self._saved_steps = state.num_timesteps
        if done is not None:
            self._saved(done)

    def collect_written(self, *, wait: bool = False) -> None:
        """Take in a background write that has ended (or ``wait`` for it): log, status."""
        try:
            done = self.writer.wait() if wait else self.writer.collect()
        except WriteFailed as e:
            raise self._save_failed(e.timesteps, e.error) from None
        if done is not None:
            self._saved(done)

    def _write(self, state: TrainingState, meta: dict[str, Any]) -> Checkpoint:
        # Also run by the writer's thread: it touches only the checkpoint folder.
        ckpt = save_checkpoint(self.ckpt_dir, state, meta)
        prune_checkpoints(self.ckpt_dir, self.config.training.keep_checkpoints)
        return ckpt

    def _saved(self, ckpt: Checkpoint) -> None:
        self.last_checkpoint = ckpt
        self._saved_steps = max(self._saved_steps, ckpt.timesteps)
        log.info("💾 Checkpoint at %s steps: %s", f"{ckpt.timesteps:,}", ckpt.path)
        self.status.status.checkpoint = CheckpointSection(str(ckpt.path), ckpt.timesteps)

    def _meta(self, final: bool) -> dict[str, Any]:
        k = self.governor.knobs
        return {
            "run": self.run,
            "final": final,
            "mode": k.mode.value,
            "batch_size": k.batch_size,
            "n_epochs": k.n_epochs,
            "n_envs": self.venv.num_envs,
            "observation_shape": list(self.venv.observation_space.shape),
            "seed": self.config.training.seed,
            "config": config_to_mapping(self.config),
            "data": self.market.info,
            "versions": {"perfmode": __version__, "torch": torch.__version__},
        }

    def _save_failed(self, timesteps: int, e: OSError) -> PerfmodeError:
        last = self.last_checkpoint
        self.status.status.run.state = "failed"
        with contextlib.suppress(OSError):  # the same disk, most likely
            self.status.write()
        kept = (
            f"{last.path.name} ({last.timesteps:,} steps) is intact; "
            if last
            else "no earlier checkpoint; "
        )
        return PerfmodeError(
            f"could not write the checkpoint at {timesteps:,} steps in {self.ckpt_dir}: "
            f"{e.strerror or e}. {kept}free space or make the folder writable, then run "
            "`perfmode train` again to resume"
        )


def session_callbacks(
    governing: GoverningCallback,
    reporting: ReportingCallback,
    checkpointing: CheckpointingCallback,
    validating: BaseCallback,
) -> CallbackList:
    """In the order of the work at a boundary (see the module's docstring); a validation
    score comes after the update's metrics row and before the checkpoint."""
    return CallbackList([governing, reporting, validating, checkpointing, governing.phase_start])


def _ep_rew_mean(model: PPO) -> float | str:
    buf = model.ep_info_buffer
    if not buf:
        return ""
    return round(float(np.mean([ep["r"] for ep in buf])), 6)
