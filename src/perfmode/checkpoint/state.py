"""A live model and its envs, to :class:`TrainingState` and back.

Taken at a rollout boundary, the state holds everything the next rollout reads: weights and
optimizer state, counters, every RNG stream (python, numpy, torch, CUDA, each env's
generator), each env's place in its episode and the observation the policy acts on next,
VecNormalize's statistics and the running episode sums (VecMonitor's, or TradingVecEnv's). Restored into a model built
from the config, the run goes on as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import deque
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from perfmode.checkpoint.io import (
    DamagedCheckpoint,
    Envs,
    Normalization,
    TrainingState,
    generator_from_state,
    python_rng_state,
)
from perfmode.errors import PerfmodeError

log = logging.getLogger("perfmode.train")


def capture(model: Any, venv: Any) -> TrainingState:
    """The state of ``model`` and ``venv`` now; cheap enough for every rollout boundary.

    The weights are the live tensors, not copies: they do not change during a rollout, and
    the state is written at the boundary or when a stop cuts the next rollout short.
    """
    python = random.getstate()
    numpy_rng = np.random.get_state(legacy=False)
    return TrainingState(
        policy=model.policy.state_dict(),
        optimizer=model.policy.optimizer.state_dict(),
        num_timesteps=int(model.num_timesteps),
        n_updates=int(model._n_updates),
        python_rng=[python[0], list(python[1]), python[2]],
        numpy_rng={**numpy_rng, "state": dict(numpy_rng["state"])},
        torch_rng=torch.get_rng_state().numpy().copy(),
        # Only a run that uses CUDA has a CUDA stream to keep (asking would start CUDA).
        cuda_rng=[s.numpy().copy() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
        envs=_capture_envs(model, venv),
        normalization=_capture_normalization(venv),
        episode_infos=[
            {"r": float(ep["r"]), "l": int(ep["l"]), "t": float(ep["t"])}
            for ep in (model.ep_info_buffer or [])
        ],
    )


def _capture_envs(model: Any, venv: Any) -> Envs | None:
    monitor = _monitor(venv)
    if model._last_obs is None or monitor is None:
        return None
    generators = [g.bit_generator.state for g in venv.get_attr("np_random")]
    try:
        episodes = venv.env_method("get_state")
    except AttributeError:  # an env that cannot say where it stands: episodes restart
        episodes = None
    original = getattr(model, "_last_original_obs", None)
    return Envs(
        generators=generators,
        episodes=episodes,
        monitor_returns=np.array(monitor.episode_returns, dtype=np.float32),
        monitor_lengths=np.array(monitor.episode_lengths, dtype=np.int32),
        monitor_count=int(monitor.episode_count),
        last_obs=np.array(model._last_obs, dtype=np.float32),
        last_original_obs=None if original is None else np.array(original, dtype=np.float32),
        last_episode_starts=np.array(model._last_episode_starts, dtype=bool),
    )


def _capture_normalization(venv: Any) -> Normalization | None:
    if not isinstance(venv, VecNormalize):
        return None
    return Normalization(
        obs_mean=np.array(venv.obs_rms.mean, dtype=np.float64),
        obs_var=np.array(venv.obs_rms.var, dtype=np.float64),
        obs_count=float(venv.obs_rms.count),
        ret_mean=np.array(venv.ret_rms.mean, dtype=np.float64),
        ret_var=np.array(venv.ret_rms.var, dtype=np.float64),
        ret_count=float(venv.ret_rms.count),
        returns=np.array(venv.returns, dtype=np.float64),
        clip_obs=float(venv.clip_obs),
        clip_reward=float(venv.clip_reward),
        gamma=float(venv.gamma),
        epsilon=float(venv.epsilon),
        norm_obs=bool(venv.norm_obs),
        norm_reward=bool(venv.norm_reward),
    )


def restore(state: TrainingState, model: Any, venv: Any, *, continue_episodes: bool = True) -> None:
    """Put ``state`` into a model just built from the config (``new_model``) and its envs.

    ``continue_episodes=False`` (other data than the saved run's) restarts every episode;
    so does another ``n_envs``, where env i still continues env i's random stream.
    """
    try:
        model.policy.load_state_dict(state.policy)
        # Copies: the loaded tensors may map the checkpoint's file, which pruning removes.
        model.policy.optimizer.load_state_dict(_copied(state.optimizer))
    except (RuntimeError, ValueError, KeyError) as e:
        raise DamagedCheckpoint(
            f"the saved weights do not fit the network this config builds ({str(e).splitlines()[0]})"
        ) from None
    model.num_timesteps = state.num_timesteps
    model._n_updates = state.n_updates
    model.ep_info_buffer = deque(
        (
            {"r": np.float32(ep["r"]), "l": np.int32(ep["l"]), "t": ep["t"]}
            for ep in state.episode_infos
        ),
        maxlen=model._stats_window_size,
    )
    model.ep_success_buffer = deque(maxlen=model._stats_window_size)

    # A reset first: it consumes the seeds new_model() queued and gives every env a start.
    obs = venv.reset()
    _restore_normalization(state.normalization, venv)
    envs = state.envs
    if envs is not None and envs.n == venv.num_envs and envs.episodes and continue_episodes:
        _continue_episodes(envs, model, venv)
    else:
        if envs is not None and envs.n != venv.num_envs:
            log.info(
                "ℹ️  n_envs is %d, the checkpoint had %d: episodes start afresh",
                venv.num_envs,
                envs.n,
            )
        for i, g in enumerate((envs.generators if envs else [])[: venv.num_envs]):
            venv.set_attr("np_random", generator_from_state(g), indices=[i])
        if isinstance(venv, VecNormalize):
            # The reset above normalised with the statistics it had then.
            obs = venv.normalize_obs(venv.get_original_obs())
        model._last_obs = obs
        model._last_episode_starts = np.ones((venv.num_envs,), dtype=bool)
        if isinstance(venv, VecNormalize):
            model._last_original_obs = venv.get_original_obs()
    _restore_global_rng(state)


def _copied(optimizer: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": {k: {n: _clone(t) for n, t in s.items()} for k, s in optimizer["state"].items()},
        "param_groups": optimizer["param_groups"],
    }


def _clone(t: Any) -> Any:
    return t.clone() if isinstance(t, torch.Tensor) else t


def _continue_episodes(envs: Envs, model: Any, venv: Any) -> None:
    assert envs.episodes is not None
    for i, (episode, g) in enumerate(zip(envs.episodes, envs.generators, strict=True)):
        try:
            venv.env_method("set_state", episode, indices=[i])
        except ValueError as e:
            raise DamagedCheckpoint(f"env {i}'s episode state: {e}") from None
        venv.set_attr("np_random", generator_from_state(g), indices=[i])
    monitor = _monitor(venv)
    if monitor is not None:
        monitor.episode_returns = envs.monitor_returns.copy()
        monitor.episode_lengths = envs.monitor_lengths.copy()
        monitor.episode_count = envs.monitor_count
    model._last_obs = envs.last_obs.copy()
    model._last_episode_starts = envs.last_episode_starts.copy()
    if envs.last_original_obs is not None:
        model._last_original_obs = envs.last_original_obs.copy()
        if isinstance(venv, VecNormalize):
            venv.old_obs = envs.last_original_obs.copy()


def _restore_normalization(n: Normalization | None, venv: Any) -> None:
    if not isinstance(venv, VecNormalize):
        return
    if n is None:
        log.warning("⚠️  the checkpoint has no VecNormalize statistics; starting them afresh")
        return
    if n.obs_mean.shape != venv.obs_rms.mean.shape:
        raise PerfmodeError(
            f"the checkpoint normalises observations of shape {n.obs_mean.shape}, the envs "
            f"give {venv.obs_rms.mean.shape}; restore the old env settings or use --fresh"
        )
    # In place: the running statistics keep their class (TrainingVecNormalize's is faster).
    _set_rms(venv.obs_rms, n.obs_mean, n.obs_var, n.obs_count)
    _set_rms(venv.ret_rms, n.ret_mean, n.ret_var, n.ret_count)
    if n.returns.shape == (venv.num_envs,):
        venv.returns = n.returns.copy()
    else:
        venv.returns = np.zeros(venv.num_envs)
    venv.clip_obs, venv.clip_reward = n.clip_obs, n.clip_reward
    venv.gamma, venv.epsilon = n.gamma, n.epsilon
    venv.norm_obs, venv.norm_reward = n.norm_obs, n.norm_reward


def _set_rms(rms: RunningMeanStd, mean: np.ndarray, var: np.ndarray, count: float) -> None:
    rms.mean, rms.var, rms.count = mean.copy(), var.copy(), count


def _restore_global_rng(state: TrainingState) -> None:
    random.setstate(python_rng_state(state.python_rng))
    np.random.set_state(state.numpy_rng)
    torch.set_rng_state(torch.from_numpy(state.torch_rng.copy()))
    if state.cuda_rng and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # another GPU count: keep the seeded streams
            torch.cuda.set_rng_state_all([torch.from_numpy(s.copy()) for s in state.cuda_rng])


def normalizer_for(n: Normalization, venv: Any) -> VecNormalize:
    """A frozen VecNormalize over ``venv`` with saved statistics (for evaluation)."""
    vn = VecNormalize(venv, training=False, norm_reward=False, gamma=n.gamma)
    _restore_normalization(n, vn)
    vn.training, vn.norm_reward = False, False
    return vn


def _monitor(venv: Any) -> Any:
    """The layer that sums each env's episode (VecMonitor, or TradingVecEnv, which is one)."""
    # Own attributes only: a wrapper's __getattr__ would answer for the layers below it.
    while venv is not None:
        if "episode_returns" in vars(venv):
            return venv
        venv = vars(venv).get("venv")
    return None
