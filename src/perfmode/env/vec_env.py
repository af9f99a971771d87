"""The training envs, stepped together: SB3's ``VecMonitor(DummyVecEnv(envs))`` in one layer.

SB3's stack spends more time on bookkeeping than the trading env spends trading: per step
DummyVecEnv deep-copies its info dicts and observation buffer, and VecMonitor copies them
again. :class:`TradingVecEnv` does the same job (same observations, rewards, dones, infos
with ``TimeLimit.truncated``, ``terminal_observation`` and the monitor's ``episode``
record, same reset and seeding rules) with fresh dicts and one array copy per step.
``tests/test_vec_env.py`` checks it against the SB3 stack step for step.

It imports SB3, so the trainer imports it directly (not through ``perfmode.env``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


class TradingVecEnv(DummyVecEnv):
    """DummyVecEnv + VecMonitor without the copies; everything else is DummyVecEnv's."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        super().__init__(env_fns)
        self._obs = self.buf_obs[None]  # a Box space: one buffer, keyed None
        self.t_start = time.time()
        self.episode_count = 0
        # float32 like VecMonitor's, so episode returns (and ep_rew_mean) agree bit for bit.
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float32)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int32)

    def reset(self) -> VecEnvObs:
        obs = super().reset()
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float32)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int32)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        rews, dones, buf = self.buf_rews, self.buf_dones, self._obs
        infos: list[dict[str, Any]] = []
        for i, env in enumerate(self.envs):
            obs, rews[i], terminated, truncated, info = env.step(self.actions[i])
            done = terminated or truncated
            dones[i] = done
            info = dict(info)
            info["TimeLimit.truncated"] = truncated and not terminated
            if done:
                info["terminal_observation"] = obs
                obs, self.reset_infos[i] = env.reset()
            buf[i] = obs
            infos.append(info)
        self.episode_returns += rews
        self.episode_lengths += 1
        for i in np.flatnonzero(dones):
            infos[i]["episode"] = {
                "r": self.episode_returns[i],
                "l": self.episode_lengths[i],
                "t": round(time.time() - self.t_start, 6),
            }
            self.episode_count += 1
            self.episode_returns[i] = 0
            self.episode_lengths[i] = 0
        return buf.copy(), rews.copy(), dones.copy(), infos

    def _obs_from_buf(self) -> VecEnvObs:
        return self._obs.copy()


class FastRunningMeanStd(RunningMeanStd):
    """SB3's RunningMeanStd with ``update`` computing the batch moments as numpy does.

    ``np.mean`` and ``np.var`` spend most of their time on argument handling for a small
    (n_envs, obs) batch; these are the reductions they end in (float32 sums in the
    array's own dtype, divided in place), so the statistics are bit-for-bit SB3's.
    """

    def update(self, arr: np.ndarray) -> None:
        if not isinstance(arr, np.ndarray) or arr.dtype not in _FLOATS or arr.ndim == 0:
            # np.mean gives integers (and half floats) a float accumulator; these
            # reductions would sum in the array's own dtype.
            super().update(arr)
            return
        n = arr.shape[0]
        total = np.add.reduce(arr, axis=0, keepdims=True)
        mean = np.true_divide(total, n, out=total, casting="unsafe")
        dev = np.subtract(arr, mean)
        np.multiply(dev, dev, out=dev)
        var = np.add.reduce(dev, axis=0, keepdims=True)
        np.true_divide(var, n, out=var, casting="unsafe")
        self.update_from_moments(mean[0], var[0], n)

    def update_from_moments(self, batch_mean: Any, batch_var: Any, batch_count: float) -> None:
        # SB3's formulas, operation for operation, with fewer temporary arrays.
        count = self.count
        delta = batch_mean - self.mean
        tot_count = count + batch_count
        new_mean = delta * batch_count
        new_mean /= tot_count
        new_mean += self.mean  # self.mean + delta * batch_count / tot_count
        m_2 = self.var * count
        m_2 += batch_var * batch_count
        delta *= delta  # np.square(delta)
        delta *= count
        delta *= batch_count
        delta /= count + batch_count
        m_2 += delta  # m_a + m_b + np.square(delta) * count * batch_count / (count + batch_count)
        m_2 /= count + batch_count
        self.mean, self.var, self.count = new_mean, m_2, batch_count + count


class TrainingVecNormalize(VecNormalize):
    """VecNormalize whose running statistics update through :class:`FastRunningMeanStd`.

    Its arguments, their checks, and every case the methods below do not cover (a dict
    observation space, ``norm_obs=False``) are VecNormalize's own.
    """

    def __init__(self, venv: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(venv, *args, **kwargs)
        self._speed_up_statistics()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._speed_up_statistics()

    def _speed_up_statistics(self) -> None:
        # Without norm_obs VecNormalize has no obs_rms at all.
        if "obs_rms" in self.__dict__:
            self.obs_rms = _fast(self.obs_rms)
        self.ret_rms = _fast(self.ret_rms)

    def _lean(self) -> bool:
        """A Box observation space, normalised: what the methods below are for."""
        return self.norm_obs and isinstance(self.__dict__.get("obs_rms"), RunningMeanStd)

    # VecNormalize's step, normalize_obs and normalize_reward, with the same arithmetic:
    # no deep copy of an array that is replaced anyway, clipping as the maximum and minimum
    # np.clip computes (in place, on the fresh result), done envs found at once.

    def step_wait(self) -> VecEnvStepReturn:
        if not self._lean():
            return super().step_wait()
        obs, rewards, dones, infos = self.venv.step_wait()
        self.old_obs = obs
        self.old_reward = rewards
        if self.training and self.norm_obs:
            self.obs_rms.update(obs)
        obs = self.normalize_obs(obs)
        if self.training:
            self._update_reward(rewards)
        rewards = self.normalize_reward(rewards)
        for idx in np.flatnonzero(dones):
            if "terminal_observation" in infos[idx]:
                infos[idx]["terminal_observation"] = self.normalize_obs(
                    infos[idx]["terminal_observation"]
                )
        self.returns[dones] = 0
        return obs, rewards, dones, infos

    def normalize_obs(self, obs: Any) -> Any:
        if not isinstance(obs, np.ndarray) or not self._lean():
            return super().normalize_obs(obs)
        rms = self.obs_rms
        x = (obs - rms.mean) / np.sqrt(rms.var + self.epsilon)
        return _clip(x, self.clip_obs).astype(np.float32)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        if not isinstance(reward, np.ndarray) or reward.ndim == 0:
            return super().normalize_reward(reward)  # a scalar has no buffer to clip in
        if self.norm_reward:
            x = reward / np.sqrt(self.ret_rms.var + self.epsilon)
            reward = _clip(x, self.clip_reward)
        return reward.astype(np.float32)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """``np.clip(x, -bound, bound)`` (max, then min; NaN stays NaN), in place."""
    np.maximum(x, -bound, out=x)
    return np.minimum(x, bound, out=x)


def _fast(rms: Any) -> Any:
    if type(rms) is RunningMeanStd:
        fast = FastRunningMeanStd(shape=rms.mean.shape)
        fast.mean, fast.var, fast.count = rms.mean, rms.var, rms.count
        return fast
    return rms
