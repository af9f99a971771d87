"""``perfmode train``: PPO on the trading environment, steered live by the governor.

Read :func:`train` top to bottom: it is the whole run. Building and resuming the model
live here; what happens during ``learn()`` lives in :mod:`perfmode.training.session` (the
wiring) and :mod:`perfmode.training.callbacks` (one callback per job).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.vec_env import SubprocVecEnv, VecMonitor

from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.base.platform import lower_priority
from perfmode.checkpoint.folders import (
    Checkpoint,
    list_checkpoints,
    open_checkpoint,
    read_meta,
    remove_stale_writes,
    untrusted_refusal,
)
from perfmode.checkpoint.io import DamagedCheckpoint
from perfmode.checkpoint.state import restore
from perfmode.config.schema import Config
from perfmode.env import Market, TradingEnv, load_market
from perfmode.env.vec_env import TradingVecEnv, TrainingVecNormalize
from perfmode.errors import PerfmodeError, UsageError
from perfmode.training.governed import GovernedPPO
from perfmode.training.policy import LeanMlpPolicy, expected_model
from perfmode.training.runfiles import archive_run, run_lock, sb3_logger, tensorboard_dir
from perfmode.training.session import TrainingSession, TrainResult

log = logging.getLogger("perfmode.train")


def train(
    config: Config,
    home: Home,
    run: str = "default",
    *,
    data: str | None = None,
    market: Market | None = None,
    fresh: bool = False,
    progress_bar: bool = False,
    config_summary: Sequence[str] = (),
    trust_checkpoint: bool = False,
    started_cpu: float | None = None,
) -> TrainResult:
    """Train until ``config.training.total_timesteps`` (resuming if the run has checkpoints).

    ``market`` is the data already loaded from ``config.env`` and ``data`` (the CLI reads it
    before importing torch); None loads it here.
    ``config_summary``: lines saying which config this is, logged once the run is ours.
    ``progress_bar``: a bar on stderr (for a terminal) instead of a progress line every 10%
    of the run.
    ``started_cpu``: this process's CPU time (``time.process_time()``) when the trainer's
    start began (``perfmode train`` takes it first thing): what it used since is its
    start-up, which a capped mode's share pays back before training on (unless
    ``training.startup_counts`` is false). None: nothing is charged.
    """
    config = config.with_data(data)
    t = config.training
    if market is None:
        market = load_market(config.env)  # bad data fails here, before anything is written
    if t.validate_every and market.validation is None:
        raise UsageError(
            f"training.validate_every is {t.validate_every} but the data has no validation "
            "part to score on; set env.validation (e.g. 0.1) or validate_every to 0"
        )
    device, why = pick_device(t.device)
    home.make_run_dir(run)
    lower_priority(t.nice)
    with run_lock(home, run):
        if fresh:  # first: this run's log lines belong in the new train.log
            archive_run(home, run)
        log.info("📈 %s", market.summary.one_line())
        log.info(why)
        _warn_if_modes_change_learning(config)
        for line in config_summary:
            log.info("%s", line)
        # Under the run lock no other trainer writes here: a half-written folder is a dead one's.
        for stale in remove_stale_writes(home.checkpoints_dir(run)):
            log.info("🧹 Removed %s, a checkpoint write that never finished", stale.name)
        resume, venv, model = _resume_or_start(
            config, home, run, market, device, fresh=fresh, trust=trust_checkpoint
        )
        model.set_logger(sb3_logger(home, run, resumed=resume is not None))
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

        config = _whole_rollouts(config, model.num_timesteps)
        session = TrainingSession(
            config,
            home,
            run,
            model,
            venv,
            market,
            device,
            resume,
            progress_bar=progress_bar,
            started_cpu=started_cpu if t.startup_counts else None,
        )
        with session.stop.installed():  # through finish(): a stop while it saves changes nothing
            try:
                with session.progress:
                    model.learn(
                        total_timesteps=config.training.total_timesteps - model.num_timesteps,
                        callback=session.callback,
                        reset_num_timesteps=False,
                        tb_log_name=run,
                    )
            except PerfmodeError:
                venv.close()
                raise
            return session.finish(resumed_from=resume.timesteps if resume else None)


def _whole_rollouts(config: Config, done: int) -> Config:
    """PPO collects whole rollouts: the target moves up to the end of the last one, said now
    rather than discovered when the run overshoots it."""
    t, rollout = config.training, config.rollout_size
    target = done + -(-(t.total_timesteps - done) // rollout) * rollout
    if target == t.total_timesteps:
        return config
    log.info(
        "🎯 Target: %s steps (%s rounded up to whole rollouts of %s = n_steps %d × %d envs)",
        f"{target:,}",
        f"{t.total_timesteps:,}",
        f"{rollout:,}",
        config.ppo.n_steps,
        t.n_envs,
    )
    return dataclasses.replace(config, training=dataclasses.replace(t, total_timesteps=target))


def _warn_if_modes_change_learning(config: Config) -> None:
    for mode in Mode:
        if mode.spec.decided or not mode.spec.computes:
            continue
        p = config.modes.profile(mode)
        if p.changes_learning:
            log.warning(
                "⚠️  %s mode changes batch (×%g) and epochs (×%g): what this run learns will "
                "depend on when you switch modes (set both multipliers to 1.0 to avoid it)",
                mode.value,
                p.batch_size_multiplier,
                p.epochs_multiplier,
            )


def _resume_or_start(
    config: Config,
    home: Home,
    run: str,
    market: Market,
    device: str,
    *,
    fresh: bool,
    trust: bool,
) -> tuple[Checkpoint | None, Any, GovernedPPO]:
    """The newest checkpoint that restores, its envs and model; or a new model."""
    folder = home.checkpoints_dir(run)
    probe = TradingEnv(market.train, config.env)
    # Every tensor of a checkpoint is checked against the model this config builds.
    expect = expected_model(probe.observation_space, probe.action_space, policy_kwargs(config))
    for ckpt in [] if fresh else _openable(folder, trust, expect, config):
        venv = build_vec_env(config, market, ckpt)
        try:
            model = load_model(ckpt, venv, config, device, home, run, market)
        except DamagedCheckpoint as e:
            # A part that read well but does not fit (an episode off the data, say).
            venv.close()
            log.warning(
                "⚠️  checkpoint %s is damaged (%s); falling back to the one before", ckpt.path, e
            )
            continue
        if ckpt.legacy:
            log.warning(
                "⚠️  --trust-checkpoint: loaded the pickles of %s (old format); "
                "new checkpoints are data only",
                ckpt.path.name,
            )
        return ckpt, venv, model
    if not fresh and list_checkpoints(folder):
        log.warning("⚠️  no checkpoint of run %r could be used; starting afresh", run)
    venv = build_vec_env(config, market)
    return None, venv, new_model(venv, config, device, home, run)


def _openable(folder: Path, trust: bool, expect: Any, config: Config) -> Iterator[Checkpoint]:
    """The checkpoints that open, newest first, each damaged one skipped with one line.

    One the config cannot take (another network or observation shape) is refused first, by
    what its meta.json says: that is a choice to make, not damage to skip.
    """
    for path in list_checkpoints(folder):
        try:
            meta = read_meta(path)
            _check_resumable(
                Checkpoint(path, meta["timesteps"], meta, None), list(expect.obs_shape), config
            )
            ckpt = open_checkpoint(path, trust=trust, expect=expect)
        except UsageError:
            raise
        except PerfmodeError as e:
            log.warning("⚠️  %s; falling back to the one before", e)
            continue
        if ckpt.state is None:
            raise untrusted_refusal(ckpt)
        yield ckpt


def pick_device(device: str) -> tuple[str, str]:
    """The torch device to train on, and a line for the log that says why.

    ``auto`` is the CPU: PPO with an MLP policy does a tiny matrix product per env step, which
    a GPU runs no faster and reaches only through a copy each way (SB3's docs say so, and SB3
    warns at start-up when an MLP policy is put on CUDA). A CNN policy would be the case for
    ``auto`` to take CUDA; perfmode has none.
    """
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise UsageError(
            "--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto"
        )
    if device == "auto":
        if not has_cuda:
            return "cpu", "🖥️  Device: cpu (auto: torch sees no CUDA GPU)"
        return "cpu", (
            "🖥️  Device: cpu (auto: PPO with an MLP policy trains faster on the CPU than on a "
            f"GPU; pass --device cuda to train on the {torch.cuda.get_device_name()} anyway)"
        )
    if device == "cuda":
        return "cuda", f"🖥️  Device: cuda ({torch.cuda.get_device_name()})"
    return device, "🖥️  Device: cpu"


def build_vec_env(config: Config, market: Market, resume: Checkpoint | None = None) -> Any:
    """The vectorised training env (checked against ``resume``'s shapes, when given)."""
    t = config.training
    make = functools.partial(TradingEnv, market.train, config.env)
    venv: Any = (
        VecMonitor(SubprocVecEnv([make] * t.n_envs))
        if t.vec_env == "subproc"
        else TradingVecEnv([make] * t.n_envs)
    )
    if resume is not None:
        try:
            _check_resumable(resume, list(venv.observation_space.shape), config)
        except UsageError:
            venv.close()
            raise
    if t.normalize:
        # Statistics saved with ``resume`` are put back by load_model (trainstate.restore).
        venv = TrainingVecNormalize(venv, gamma=config.ppo.gamma)
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


def policy_kwargs(config: Config) -> dict[str, Any]:
    """SB3's MlpPolicy settings; ``foreach`` only picks torch's batched Adam kernels (the
    same arithmetic per parameter, one call for all of them instead of one each)."""
    return {
        "net_arch": list(config.ppo.net_arch),
        "optimizer_kwargs": {"eps": 1e-5, "foreach": True},
    }


def new_model(
    venv: Any, config: Config, device: str, home: Home | None = None, run: str = "default"
) -> GovernedPPO:
    return GovernedPPO(
        LeanMlpPolicy,
        venv,
        seed=config.training.seed,
        device=device,
        policy_kwargs=policy_kwargs(config),
        tensorboard_log=tensorboard_dir(home, run),
        verbose=0,
        **_hyperparameters(config),
    )


def load_model(
    ckpt: Checkpoint,
    venv: Any,
    config: Config,
    device: str,
    home: Home | None = None,
    run: str = "default",
    market: Market | None = None,
) -> GovernedPPO:
    """A model built from the config with the checkpoint's state in it: the run goes on
    exactly where it was (weights, optimizer, counters, RNG streams, episodes, statistics).

    Hyperparameters come from the current config (n_steps, batch and epochs may change
    between resumes); the network and observation shapes cannot, and are checked first.
    Episodes continue when the data is the checkpoint's (``market``), else start afresh.
    """
    if ckpt.state is None:
        raise untrusted_refusal(ckpt)
    _check_resumable(ckpt, list(venv.observation_space.shape), config)
    model = new_model(venv, config, device, home, run)
    same_data = market is None or ckpt.meta.get("data") == json.loads(json.dumps(market.info))
    try:
        restore(ckpt.state, model, venv, continue_episodes=same_data)
    except DamagedCheckpoint:
        raise
    except PerfmodeError as e:
        raise PerfmodeError(
            f"cannot resume from {ckpt.path}: {e}; fix the config or start over with --fresh"
        ) from None
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
