"""``perfmode train``: PPO on the trading environment, steered live by the governor.

Read :func:`train` top to bottom: it is the whole run. SB3 facts it rests on are in
DESIGN.md ("The governor"); the callbacks below hook into ``learn()``'s loop:

    collect_rollouts()   on_rollout_start → [on_step ×n] → on_rollout_end
    train()              [optimizer step hook ×(epochs × minibatches)]
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize

from perfmode import __version__
from perfmode.checkpoints import (
    Checkpoint,
    capture_rng,
    latest_checkpoint,
    load_rng,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from perfmode.config import Config, config_to_mapping
from perfmode.env import Market, TradingEnv, load_market
from perfmode.errors import PerfmodeError, UsageError
from perfmode.governor import Governor
from perfmode.home import Home
from perfmode.progress import CpuMeter, MetricsCsv, StatusFile
from perfmode.runstatus import read_json_object
from perfmode.settings import SettingsStore, utc_now

log = logging.getLogger("perfmode.train")


@dataclass(frozen=True)
class TrainResult:
    timesteps: int
    checkpoint: Path | None
    stopped_early: bool
    resumed_from: int | None


def train(
    config: Config,
    home: Home,
    run: str = "default",
    *,
    data: str | None = None,
    fresh: bool = False,
    progress_bar: bool = False,
) -> TrainResult:
    """Train until ``config.training.total_timesteps`` (resuming if the run has checkpoints)."""
    t = config.training
    device = pick_device(t.device)
    home.run_dir(run).mkdir(parents=True, exist_ok=True)
    _lower_priority(t.nice)
    with _run_lock(home, run):
        if fresh:
            _archive_checkpoints(home, run)
        market = load_market(config.env, data)
        resume = None if fresh else latest_checkpoint(home.checkpoints_dir(run))
        venv = build_vec_env(config, market, resume)
        model = (
            load_model(resume, venv, config, device)
            if resume
            else new_model(venv, config, device, home, run)
        )
        if resume:
            log.info(
                "▶️  Resuming run %r from %s (%s / %s steps)",
                run,
                resume.path.name,
                f"{resume.timesteps:,}",
                f"{t.total_timesteps:,}",
            )
        remaining = t.total_timesteps - model.num_timesteps
        if remaining <= 0:
            log.info(
                "✅ Run %r is already at %s steps (target %s); nothing to do.",
                run,
                f"{model.num_timesteps:,}",
                f"{t.total_timesteps:,}",
            )
            venv.close()
            return TrainResult(
                model.num_timesteps, resume.path if resume else None, False, model.num_timesteps
            )

        session = TrainingSession(config, home, run, model, venv, market, device)
        model.oom_handler = session.handle_oom
        with session.stop.installed():
            model.learn(
                total_timesteps=remaining,
                callback=session.callback,
                reset_num_timesteps=False,
                progress_bar=progress_bar,
                tb_log_name=run,
            )
        return session.finish(resumed_from=resume.timesteps if resume else None)


def _lower_priority(nice: int) -> None:
    # Only ever downwards: raising priority back needs privileges, so this is once per process.
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto"
        )
    return device


def build_vec_env(config: Config, market: Market, resume: Checkpoint | None = None) -> Any:
    """The vectorised training env; VecNormalize statistics come back from ``resume``."""
    t = config.training
    make = functools.partial(TradingEnv, market.train, config.env)
    cls = SubprocVecEnv if t.vec_env == "subproc" else DummyVecEnv
    venv: Any = VecMonitor(cls([make] * t.n_envs))
    if resume is not None:
        try:
            _check_resumable(resume, list(venv.observation_space.shape), config)
        except UsageError:
            venv.close()
            raise
    if t.normalize:
        if resume is not None and resume.vecnormalize is not None:
            venv = VecNormalize.load(str(resume.vecnormalize), venv)
        else:
            if resume is not None:
                log.warning(
                    "⚠️  %s has no VecNormalize statistics; starting them afresh", resume.path.name
                )
            venv = VecNormalize(venv, gamma=config.ppo.gamma)
    return venv


def _hyperparameters(config: Config) -> dict[str, Any]:
    p = config.ppo
    return {
        "n_steps": p.n_steps,
        "batch_size": p.batch_size,
        "n_epochs": p.n_epochs,
        "learning_rate": p.learning_rate,
        "gamma": p.gamma,
        "gae_lambda": p.gae_lambda,
        "clip_range": p.clip_range,
        "ent_coef": p.ent_coef,
        "vf_coef": p.vf_coef,
        "max_grad_norm": p.max_grad_norm,
    }


def new_model(
    venv: Any, config: Config, device: str, home: Home | None = None, run: str = "default"
) -> GovernedPPO:
    return GovernedPPO(
        "MlpPolicy",
        venv,
        seed=config.training.seed,
        device=device,
        policy_kwargs={"net_arch": list(config.ppo.net_arch)},
        tensorboard_log=_tensorboard_dir(home, run),
        verbose=0,
        **_hyperparameters(config),
    )


def load_model(ckpt: Checkpoint, venv: Any, config: Config, device: str) -> GovernedPPO:
    """The checkpoint's model on ``venv``, with the RNG streams continuing where they were."""
    _check_resumable(ckpt, list(venv.observation_space.shape), config)
    # Hyperparameters come from the current config (n_steps, batch and epochs may change
    # between resumes); the network shape cannot and was checked above.
    model = GovernedPPO.load(ckpt.model, env=venv, device=device, **_hyperparameters(config))
    # load() re-seeds every RNG with the run's seed and leaves the env to be reset. Reset it
    # here, then put the saved generator states back so each stream continues.
    model._last_obs = venv.reset()
    model._last_episode_starts = np.ones((venv.num_envs,), dtype=bool)
    if isinstance(venv, VecNormalize):
        model._last_original_obs = venv.get_original_obs()
    if ckpt.rng is not None:
        restore_rng(load_rng(ckpt.rng), venv)
    return model


def _check_resumable(ckpt: Checkpoint, shape: list[int], config: Config) -> None:
    saved_shape = ckpt.meta.get("observation_shape")
    if saved_shape is not None and list(saved_shape) != shape:
        raise UsageError(
            f"{ckpt.path.name} was trained on observations of shape {saved_shape}, the config "
            f"gives {shape} (env.window or the features changed); restore the old env settings "
            "or start over with --fresh"
        )
    saved_arch = (ckpt.meta.get("config") or {}).get("ppo", {}).get("net_arch")
    if saved_arch is not None and list(saved_arch) != list(config.ppo.net_arch):
        raise UsageError(
            f"{ckpt.path.name} has ppo.net_arch {saved_arch}, the config says "
            f"{list(config.ppo.net_arch)}; a network cannot change shape mid-run: restore it "
            "or start over with --fresh"
        )


def _tensorboard_dir(home: Home | None, run: str) -> str | None:
    if home is None or importlib.util.find_spec("tensorboard") is None:
        return None
    return str(home.run_dir(run) / "tensorboard")


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
    ) -> None:
        self.config, self.home, self.run = config, home, run
        self.model, self.venv, self.market, self.device = model, venv, market, device
        self.stop = StopRequest()
        self.ckpt_dir = home.checkpoints_dir(run)
        self.last_checkpoint: Checkpoint | None = latest_checkpoint(self.ckpt_dir)
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
            SettingsStore(home.settings), config, device=device, on_poll=self._on_poll
        )
        self.metrics = MetricsCsv(home.metrics_file(run))
        self.cpu = CpuMeter()
        self.callback = _SessionCallback(self)
        self._update_clock: tuple[float, int] | None = None
        self._on_poll()
        self.status.write()

    # -- called by the callback ------------------------------------------------------

    def _on_poll(self) -> None:
        self.status.update(timesteps=self.model.num_timesteps, **self.governor.status_fields())
        self.status.maybe_write()

    def at_rollout_boundary(self) -> None:
        """Between two updates: weights, counters and normalisation agree; safe to save."""
        self.record_update()
        freq = self.config.training.checkpoint_freq
        last = self.last_checkpoint.timesteps if self.last_checkpoint else 0
        if self.model.num_timesteps // freq > last // freq:
            self.save()
        self.status.maybe_write(force=True)

    def record_update(self) -> None:
        """A metrics row for the update that just ended (none before the first one)."""
        now, steps = time.monotonic(), self.model.num_timesteps
        if self._update_clock is not None and steps > self._update_clock[1]:
            t0, s0 = self._update_clock
            fps = round((steps - s0) / max(now - t0, 1e-9), 1)
            self.status.update(fps=fps)
            self.metrics.append(
                {
                    "time": utc_now().isoformat(timespec="seconds"),
                    "timesteps": steps,
                    "mode": self.governor.knobs.mode.value,
                    "batch_size": self.model.batch_size,
                    "n_epochs": self.model.n_epochs,
                    "fps": fps,
                    "cpu_cores": round(self.cpu.read(), 3),
                    "ep_rew_mean": _ep_rew_mean(self.model),
                }
            )
        self._update_clock = (now, steps)
        self.status.update(timesteps=steps)

    def save(self, final: bool = False) -> Checkpoint:
        model = self.model
        k = self.governor.knobs
        ckpt = save_checkpoint(
            self.ckpt_dir,
            model.num_timesteps,
            model,
            vecnormalize=self.venv if isinstance(self.venv, VecNormalize) else None,
            rng_state=capture_rng(self.venv),
            meta={
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
            },
        )
        self.last_checkpoint = ckpt
        prune_checkpoints(self.ckpt_dir, self.config.training.keep_checkpoints)
        log.info("💾 Checkpoint at %s steps: %s", f"{ckpt.timesteps:,}", ckpt.path)
        self.status.update(last_checkpoint=str(ckpt.path), last_checkpoint_timesteps=ckpt.timesteps)
        return ckpt

    def finish(self, resumed_from: int | None) -> TrainResult:
        self.callback.remove_hooks()
        steps = self.model.num_timesteps
        stopped = self.stop.requested and steps < self.config.training.total_timesteps
        if stopped:
            # learn() stopped inside a rollout that was never trained on: count only the
            # steps the weights have learned from, so a resume redoes the partial rollout.
            self.model.num_timesteps = self.callback.boundary_timesteps
        else:
            self.record_update()
        ckpt = self.save(final=not stopped)
        self.status.update(
            state="stopped" if stopped else "finished", timesteps=self.model.num_timesteps
        )
        self.status.write()
        self.venv.close()
        verb = "Stopped" if stopped else "Finished"
        log.info(
            "✅ %s at %s steps; resume with `perfmode train`", verb, f"{self.model.num_timesteps:,}"
        )
        return TrainResult(self.model.num_timesteps, ckpt.path, stopped, resumed_from)

    def handle_oom(self) -> None:
        """CUDA OOM in an update: halve the batch (not below the base); the update is redone."""
        _free_cuda_memory()
        model = self.model
        base = max(2, min(self.config.ppo.batch_size, self.config.rollout_size))
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
        self.status.fields["oom_events"].append(
            {
                "at": utc_now().isoformat(),
                "timesteps": model.num_timesteps,
                "failed_batch": failed,
                "new_batch": smaller,
            }
        )
        self.status.update(**self.governor.status_fields())
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


class GovernedPPO(PPO):
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
        self.boundary_timesteps = 0
        self._hook: Any = None

    def _on_training_start(self) -> None:
        gov = self.session.governor
        # A tick after every minibatch step: a switch lands mid-update too.
        self._hook = self.model.policy.optimizer.register_step_post_hook(lambda *_: gov.tick())

    def _on_rollout_start(self) -> None:
        self.boundary_timesteps = self.num_timesteps
        self.session.governor.phase = "rollout"
        self.session.at_rollout_boundary()

    def _on_step(self) -> bool:
        self.session.governor.tick()
        return not self.session.stop.requested

    def _on_rollout_end(self) -> None:
        self.session.governor.apply_update_knobs(self.model)
        self.session.governor.phase = "update"

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


@contextlib.contextmanager
def _run_lock(home: Home, run: str) -> Iterator[None]:
    lock = FileLock(home.train_lock(run), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        status = read_json_object(home.status_file(run)) or {}
        pid = status.get("pid", "unknown")
        raise PerfmodeError(
            f"a trainer is already running run {run!r} in {home.root} (pid {pid}); "
            "stop it first, or train another run with --run NAME"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _archive_checkpoints(home: Home, run: str) -> None:
    folder = home.checkpoints_dir(run)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = home.run_dir(run) / "archive" / f"checkpoints-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(target)
    log.info("🗄️  --fresh: moved the old checkpoints to %s", target)
