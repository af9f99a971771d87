"""The fast path learns exactly what plain SB3 learns.

perfmode trains with its own vectorised env (TradingVecEnv) and a lean policy
(LeanMlpPolicy). Both claim to be SB3's ``VecMonitor(DummyVecEnv)`` and ``MlpPolicy`` with
less Python around the same arithmetic; these tests hold them to it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from perfmode.base.home import Home
from perfmode.config.schema import load_config
from perfmode.env import TradingEnv, load_market
from perfmode.env.vec_env import TradingVecEnv
from perfmode.settings.store import SettingsStore
from perfmode.training.trainer import train
from tests.trainkit import write_config


def _envs(config, n: int):
    market = load_market(config.env)
    make = functools.partial(TradingEnv, market.train, config.env)
    return TradingVecEnv([make] * n), VecMonitor(DummyVecEnv([make] * n))


def test_trading_vec_env_steps_exactly_like_sb3s_stack(tmp_path) -> None:
    # Short episodes and a tight drawdown limit: many truncations and terminations.
    config = load_config(
        write_config(
            tmp_path / "c.yaml", env={"episode_length": 20, "max_drawdown": 0.03, "window": 8}
        )
    )
    ours, ref = _envs(config, 5)
    ours.seed(7)
    ref.seed(7)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    actions = np.random.default_rng(0).integers(0, 3, size=(600, 5))
    ends = {"terminated": 0, "truncated": 0}
    for a in actions:
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        assert r1.dtype == r2.dtype and o1.dtype == o2.dtype
        for a_info, b_info in zip(i1, i2, strict=True):
            assert a_info.keys() == b_info.keys()
            assert a_info["TimeLimit.truncated"] == b_info["TimeLimit.truncated"]
            if "terminal_observation" in b_info:
                np.testing.assert_array_equal(
                    a_info["terminal_observation"], b_info["terminal_observation"]
                )
            if "episode" in b_info:
                ends["truncated" if b_info["TimeLimit.truncated"] else "terminated"] += 1
                assert a_info["episode"]["r"] == b_info["episode"]["r"]
                assert type(a_info["episode"]["r"]) is type(b_info["episode"]["r"])
                assert a_info["episode"]["l"] == b_info["episode"]["l"]
    assert ends["terminated"] > 5 and ends["truncated"] > 5, ends
    # The RNG streams the checkpoints save go through get_attr/set_attr as before.
    assert [g.bit_generator.state for g in ours.get_attr("np_random")] == [
        g.bit_generator.state for g in ref.get_attr("np_random")
    ]


@pytest.mark.parametrize("clip", [10.0, 0.3])  # 0.3: most values hit the clip
def test_training_vec_normalize_steps_exactly_like_sb3s(tmp_path, clip: float) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    from perfmode.env.vec_env import TrainingVecNormalize

    config = load_config(
        write_config(
            tmp_path / "c.yaml", env={"episode_length": 20, "max_drawdown": 0.03, "window": 8}
        )
    )
    inner_ours, inner_ref = _envs(config, 5)
    kw = {"gamma": 0.97, "clip_obs": clip, "clip_reward": clip}
    ours, ref = TrainingVecNormalize(inner_ours, **kw), VecNormalize(inner_ref, **kw)
    ours.seed(3)
    ref.seed(3)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    terminal = 0
    for a in np.random.default_rng(2).integers(0, 3, size=(400, 5)):
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        assert o1.dtype == o2.dtype and r1.dtype == r2.dtype
        np.testing.assert_array_equal(d1, d2)
        for a_info, b_info in zip(i1, i2, strict=True):
            if "terminal_observation" in b_info:
                terminal += 1
                np.testing.assert_array_equal(
                    a_info["terminal_observation"], b_info["terminal_observation"]
                )
        np.testing.assert_array_equal(ours.get_original_obs(), ref.get_original_obs())
    assert terminal > 10
    for a, b in ((ours.obs_rms, ref.obs_rms), (ours.ret_rms, ref.ret_rms)):
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.var, b.var)
        assert a.count == b.count
    np.testing.assert_array_equal(ours.returns, ref.returns)
    if clip < 1:
        assert (np.abs(o1) == clip).any()  # the clip was exercised


def test_returned_arrays_are_not_the_envs_buffers(tmp_path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml"))
    ours, _ = _envs(config, 2)
    first = ours.reset()
    kept = first.copy()
    obs, rew, _, _ = ours.step(np.array([0, 2]))
    ours.step(np.array([2, 0]))
    np.testing.assert_array_equal(first, kept)  # a later step must not rewrite it
    assert obs is not ours.buf_obs[None] and rew is not ours.buf_rews


@pytest.mark.parametrize("n_epochs,batch", [(2, 32), (3, 48)])
def test_perfmode_training_equals_plain_sb3_ppo_learn(
    home: Home, tmp_path, n_epochs: int, batch: int
) -> None:
    """The README's promise: same seed, hyperparameters and threads, same final weights."""
    config = load_config(
        write_config(
            tmp_path / "tiny.yaml",
            ppo={"n_epochs": n_epochs, "batch_size": batch},
            training={"total_timesteps": 512, "checkpoint_freq": 128, "nice": 0},
            modes={"quiet": {"torch_threads": 1}},
        )
    )
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    threads = torch.get_num_threads()
    try:
        result = train(config, home)
        torch.set_num_threads(1)  # quiet's threads
        market = load_market(config.env)
        make = functools.partial(TradingEnv, market.train, config.env)
        p = config.ppo
        plain = PPO(
            "MlpPolicy",
            VecNormalize(VecMonitor(DummyVecEnv([make] * config.training.n_envs)), gamma=p.gamma),
            seed=config.training.seed,
            n_steps=p.n_steps,
            batch_size=p.batch_size,
            n_epochs=p.n_epochs,
            learning_rate=p.learning_rate,
            gamma=p.gamma,
            gae_lambda=p.gae_lambda,
            clip_range=p.clip_range,
            ent_coef=p.ent_coef,
            vf_coef=p.vf_coef,
            max_grad_norm=p.max_grad_norm,
            policy_kwargs={"net_arch": p.net_arch},
        )
        plain.learn(512)
    finally:
        torch.set_num_threads(threads)
    ours = _final_state(result.checkpoint)
    reference = plain.policy.state_dict()
    assert ours.keys() == reference.keys()
    for name, value in reference.items():
        assert torch.equal(ours[name], value), name


def _final_state(checkpoint) -> dict[str, torch.Tensor]:
    """The policy weights a checkpoint holds, read as data."""
    from perfmode.checkpoint.io import read_weights

    return read_weights(checkpoint / "policy.pth")


@pytest.mark.parametrize("shape", [(8, 99), (3, 5), (8,), (1, 4), (16,)])
def test_fast_running_statistics_equal_sb3s(shape) -> None:
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    from perfmode.env.vec_env import FastRunningMeanStd

    rng = np.random.default_rng(1)
    ref, fast = RunningMeanStd(shape=shape[1:]), FastRunningMeanStd(shape=shape[1:])
    for dtype in (np.float32, np.float64) * 50:
        batch = (rng.normal(size=shape) * rng.uniform(0, 100) + rng.normal() * 50).astype(dtype)
        ref.update(batch)
        fast.update(batch)
        assert np.array_equal(ref.mean, fast.mean) and np.array_equal(ref.var, fast.var)
        assert ref.count == fast.count
        assert type(ref.mean) is type(fast.mean)
