"""One ``learn()`` call's companions: the governor's hooks, checkpoints, status and metrics.

The callback hooks into SB3's loop (see DESIGN.md, "The governor"):

    collect_rollouts()   on_rollout_start → [on_step ×n] → on_rollout_end
    train()              [optimizer step hook ×(epochs × minibatches)]

``on_rollout_start`` is the safe point: the last update is done, so weights, counters and
normalisation statistics agree, and that is where checkpoints are written.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from perfmode import __version__
from perfmode.base.home import Home
from perfmode.checkpoint.folders import Checkpoint, prune_checkpoints, save_checkpoint
from perfmode.checkpoint.io import TrainingState
from perfmode.checkpoint.state import capture
from perfmode.config.schema import Config, config_to_mapping
from perfmode.env import Market
from perfmode.errors import PerfmodeError
from perfmode.governor.governor import Governor, fit_batch
from perfmode.settings.store import SettingsStore, utc_now
from perfmode.status.file import trainer_pids
from perfmode.status.progress import CpuMeter, MetricsCsv, StatusFile
from perfmode.status.progressbar import TrainProgress
from perfmode.training.fastppo import LeanPPO
from perfmode.training.validation import ValidationReports

log = logging.getLogger("perfmode.train")


@dataclass(frozen=True)
class TrainResult:
    timesteps: int
    checkpoint: Path | None
    stopped_early: bool
    resumed_from: int | None


class StopRequest:
    """Ctrl-C or SIGTERM: stop at the next safe point and save; a second Ctrl-C: stop now."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.info(
            "🛑 %s: stopping at the next safe point and saving (Ctrl-C again to quit now)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class TrainingSession:
    """Everything one ``learn()`` call needs besides the model: governor, saves, reports."""

    def __init__(
        self,
        config: Config,
        home: Home,
        run: str,
        model: PPO,
        venv: Any,
        market: Market,
        device: str,
        resumed_from: Checkpoint | None = None,
        *,
        progress_bar: bool = False,
    ) -> None:
        self.config, self.home, self.run = config, home, run
        self.model, self.venv, self.market, self.device = model, venv, market, device
        self.stop = StopRequest()
        self.ckpt_dir = home.checkpoints_dir(run)
        self.last_checkpoint = resumed_from
        self.status = StatusFile(
            home.status_file(run),
            {
                "run": run,
                "state": "training",
                "device": device,
                "started_at": utc_now().isoformat(),
                "timesteps": model.num_timesteps,
                "total_timesteps": config.training.total_timesteps,
                "fps": None,
                "last_checkpoint": str(self.last_checkpoint.path) if self.last_checkpoint else None,
                "last_checkpoint_timesteps": self.last_checkpoint.timesteps
                if self.last_checkpoint
                else None,
                "oom_events": [],
            },
        )
        self.governor = Governor(
            SettingsStore(home.settings),
            config,
            device=device,
            on_poll=self._on_poll,
            on_pause=self.at_pause,
            should_stop=lambda: self.stop.requested,
            trainers=lambda: trainer_pids(home),
        )
        self.metrics = MetricsCsv(home.metrics_file(run))
        # Rows past the step this run starts from describe updates whose weights were lost
        # (a kill, a damaged newer checkpoint): they go, so timesteps never repeat.
        dropped = self.metrics.continue_from(model.num_timesteps)
        if dropped:
            log.info(
                "📈 metrics.csv: %d row(s) past %s steps were from work lost when the run "
                "stopped; moved to %s",
                dropped.rows,
                f"{model.num_timesteps:,}",
                dropped.path,
            )
        # The state at the last rollout boundary: what a stop in the next rollout saves.
        self.boundary: TrainingState | None = None
        self.cpu = CpuMeter()
        self.progress = TrainProgress(
            config.training.total_timesteps, model.num_timesteps, terminal=progress_bar
        )
        self.callback = _SessionCallback(self)
        self.validation = ValidationReports(home.run_dir(run), config, model.num_timesteps)
        self._update_clock: tuple[float, int] | None = None
        # The mode the update in flight started in: its metrics row is written when it ends,
        # after a switch may have changed the governor's mode (batch and epochs stay on the
        # model until the next update; an OOM retry changes the batch, and the row says so).
        self._update_mode: str | None = None
        self._on_poll()
        self.status.write()

    # -- called by the callback ------------------------------------------------------

    def _on_poll(self) -> None:
        fields = self.governor.status_fields()
        self.progress.update(self.model.num_timesteps, self.governor.knobs.mode.value)
        state = "paused" if fields["paused_since"] else "training"
        self.status.update(timesteps=self.model.num_timesteps, state=state, **fields)
        self.status.maybe_write()

    def at_pause(self) -> None:
        """Entering ``paused``: keep a checkpoint no older than checkpoint_freq steps, so
        a shutdown while paused loses nothing; then the governor sleeps."""
        last = self.last_checkpoint.timesteps if self.last_checkpoint else 0
        b = self.boundary
        if b is not None and b.num_timesteps - last >= self.config.training.checkpoint_freq:
            self.save(b)
        self._on_poll()
        self.status.maybe_write(force=True)

    def at_rollout_boundary(self) -> None:
        """Between two updates: weights, counters and normalisation agree; safe to save."""
        self.record_update()
        self.validation.at_boundary(self.model, self.venv, self.market)
        self.boundary = capture(self.model, self.venv)
        freq = self.config.training.checkpoint_freq
        last = self.last_checkpoint.timesteps if self.last_checkpoint else 0
        if self.model.num_timesteps // freq > last // freq:
            self.save(self.boundary)
        self.status.maybe_write(force=True)

    def start_update(self) -> None:
        """Right before an update, its knobs applied."""
        self._update_mode = self.governor.knobs.mode.value

    def record_update(self) -> None:
        """A metrics row for the update that just ended (none before the first one)."""
        now, steps = time.monotonic(), self.model.num_timesteps
        if self._update_clock is not None and steps > self._update_clock[1]:
            t0, s0 = self._update_clock
            fps = round((steps - s0) / max(now - t0, 1e-9), 1)
            self.status.update(fps=fps, **self.progress.status_fields())
            self.metrics.append(
                {
                    "time": utc_now().isoformat(timespec="seconds"),
                    "timesteps": steps,
                    "mode": self._update_mode or self.governor.knobs.mode.value,
                    "mode_reason": self.governor.status_fields()["mode_reason"],
                    "batch_size": self.model.batch_size,
                    "n_epochs": self.model.n_epochs,
                    "fps": fps,
                    "cpu_cores": round(self.cpu.read(), 3),
                    "ep_rew_mean": _ep_rew_mean(self.model),
                    **self.governor.gpu.reading.metrics_row(),
                }
            )
        self._update_clock = (now, steps)
        self.status.update(timesteps=steps)

    def save(self, state: TrainingState | None = None, final: bool = False) -> Checkpoint:
        """Write ``state`` (default: the model as it is now) as a checkpoint; prune old ones."""
        state = state or capture(self.model, self.venv)
        k = self.governor.knobs
        meta = {
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
        try:
            ckpt = save_checkpoint(self.ckpt_dir, state, meta)
        except OSError as e:
            raise self._save_failed(state.num_timesteps, e) from None
        self.last_checkpoint = ckpt
        prune_checkpoints(self.ckpt_dir, self.config.training.keep_checkpoints)
        log.info("💾 Checkpoint at %s steps: %s", f"{ckpt.timesteps:,}", ckpt.path)
        self.status.update(last_checkpoint=str(ckpt.path), last_checkpoint_timesteps=ckpt.timesteps)
        return ckpt

    def _save_failed(self, timesteps: int, e: OSError) -> PerfmodeError:
        last = self.last_checkpoint
        self.status.update(state="failed")
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

    def finish(self, resumed_from: int | None) -> TrainResult:
        self.callback.remove_hooks()
        steps = self.model.num_timesteps
        stopped = self.stop.requested and steps < self.config.training.total_timesteps
        last = self.last_checkpoint
        if stopped and self.boundary is not None:
            # learn() stopped inside a rollout that was never trained on: save the state of
            # the boundary before it, so a resume redoes that rollout exactly.
            self.model.num_timesteps = self.boundary.num_timesteps
            if last and last.timesteps == self.boundary.num_timesteps and not last.legacy:
                ckpt = last  # that very state is on disk already
            else:
                ckpt = self.save(self.boundary)
        else:
            self.record_update()
            if not stopped:
                self.validation.at_finish(self.model, self.venv, self.market)
            ckpt = self.save(final=not stopped)
        self.status.update(
            state="stopped" if stopped else "finished",
            timesteps=self.model.num_timesteps,
            eta_s=None,
            eta_at=None,
        )
        self.status.write()
        self.venv.close()
        steps = f"{self.model.num_timesteps:,}"
        if stopped:
            log.info("✅ Stopped at %s steps; run `perfmode train` again to resume", steps)
        else:
            log.info(
                "✅ Finished: %s steps (target %s)",
                steps,
                f"{self.config.training.total_timesteps:,}",
            )
        return TrainResult(self.model.num_timesteps, ckpt.path, stopped, resumed_from)

    def handle_oom(self) -> None:
        """CUDA OOM in an update: halve the batch (not below the base); the update is redone."""
        _free_cuda_memory()
        model = self.model
        base = fit_batch(self.config.ppo.batch_size, self.config)
        failed = model.batch_size
        if failed <= base:
            self._fatal_oom(failed)
        smaller = max(base, failed // 2)
        self.governor.cap_batch(smaller)
        model.batch_size = smaller
        log.warning(
            "⚠️  CUDA out of memory at batch %d; redoing the update with batch %d "
            "(no batch above %d for the rest of the run)",
            failed,
            smaller,
            smaller,
        )
        self.status.update(
            oom_events=[
                *self.status.fields["oom_events"],
                {
                    "at": utc_now().isoformat(),
                    "timesteps": model.num_timesteps,
                    "failed_batch": failed,
                    "new_batch": smaller,
                },
            ],
            **self.governor.status_fields(),
        )
        self.status.maybe_write(force=True)

    def _fatal_oom(self, batch: int) -> None:
        ckpt = self.save()
        self.status.update(state="failed")
        self.status.write()
        raise PerfmodeError(
            f"CUDA ran out of memory even at the base batch size {batch}; saved {ckpt.path}. "
            "Lower ppo.batch_size or ppo.net_arch, raise modes.*.cuda_memory_fraction, free the "
            "GPU, or train with --device cpu; then run `perfmode train` again to resume"
        )


class GovernedPPO(LeanPPO):
    """PPO whose update survives a CUDA OOM: ``oom_handler`` shrinks the batch, then retry.

    SB3 has no OOM handling; ``torch.OutOfMemoryError`` is raised mid-update. The saved
    zip is a plain PPO one (the handler is not saved).
    """

    oom_handler: Any = None

    def train(self) -> None:
        while True:
            try:
                return super().train()
            except torch.OutOfMemoryError:
                if self.oom_handler is None:
                    raise
                self.oom_handler()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "oom_handler"]


class _SessionCallback(BaseCallback):
    def __init__(self, session: TrainingSession) -> None:
        super().__init__()
        self.session = session
        self._hook: Any = None

    def _on_training_start(self) -> None:
        gov = self.session.governor
        # A tick after every minibatch step: a switch lands mid-update too.
        self._hook = self.model.policy.optimizer.register_step_post_hook(lambda *_: gov.tick())

    def _on_rollout_start(self) -> None:
        gov = self.session.governor
        gov.end_phase()  # the update just done: timed before a checkpoint is written
        self.session.at_rollout_boundary()
        gov.start_phase("rollout")

    def _on_step(self) -> bool:
        self.session.governor.tick()
        return not self.session.stop.requested

    def _on_rollout_end(self) -> None:
        gov = self.session.governor
        gov.end_phase()
        gov.apply_update_knobs(self.model)
        self.session.start_update()
        gov.start_phase("update")

    def _on_training_end(self) -> None:
        self.session.progress.update(self.num_timesteps, self.session.governor.knobs.mode.value)

    def remove_hooks(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def _ep_rew_mean(model: PPO) -> float | str:
    buf = model.ep_info_buffer
    if not buf:
        return ""
    return round(float(np.mean([ep["r"] for ep in buf])), 6)


def _free_cuda_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
