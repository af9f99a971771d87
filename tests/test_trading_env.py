"""The environment: gymnasium's checker, reward and cost arithmetic, limits, vector envs."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from perfmode.env import EnvConfig, Series, TradingEnv, load_market, observation_size
from perfmode.env.features import feature_table
from perfmode.errors import UsageError

SHORT, FLAT, LONG = 0, 1, 2


def series_of(close: list[float] | np.ndarray) -> Series:
    close = np.asarray(close, dtype=np.float64)
    time = np.datetime64("2021-01-04", "ns") + np.arange(len(close)) * np.timedelta64(1, "D")
    return Series(close, time, feature_table(close))


def rising(n: int = 50, rate: float = 0.01) -> Series:
    return series_of(100.0 * (1.0 + rate) ** np.arange(n))


def hand_env(series: Series, **cfg: object) -> TradingEnv:
    return TradingEnv(series, EnvConfig(window=4, episode_length=None, **cfg))


def test_passes_gymnasium_env_checker() -> None:
    cfg = EnvConfig()
    env = TradingEnv(load_market(cfg).train, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    check_env(TradingEnv(rising(), EnvConfig(window=2, position_levels=7)), skip_render_check=True)


def test_long_on_rising_series_earns_log_return_minus_costs() -> None:
    cost = 0.002
    s = rising(rate=0.01)
    env = hand_env(s, transaction_cost=cost)
    env.reset(options={"start": 4})
    _, r1, *_ = env.step(LONG)
    assert r1 == pytest.approx(math.log(s.close[5] / s.close[4]) + math.log(1 - cost), abs=1e-12)
    _, r2, *_ = env.step(LONG)  # holding: no cost
    assert r2 == pytest.approx(math.log(1.01), abs=1e-12)
    total = r1 + r2
    for _ in range(10):
        total += env.step(LONG)[1]
    # Rewards add up to the log of final equity.
    assert total == pytest.approx(math.log(env.equity), abs=1e-12)
    assert env.equity == pytest.approx((1 - cost) * s.close[16] / s.close[4], rel=1e-12)


def test_short_loses_on_rising_series_and_reversal_pays_double_cost() -> None:
    cost = 0.001
    env = hand_env(rising(rate=0.01), transaction_cost=cost)
    env.reset(options={"start": 4})
    env.step(LONG)
    _, r, *_ = env.step(SHORT)
    assert r == pytest.approx(math.log(1 - 2 * cost) + math.log(1 - 0.01), abs=1e-12)
    _, r, *_ = env.step(FLAT)
    assert r == pytest.approx(math.log(1 - cost), abs=1e-12)


def test_flat_earns_exactly_nothing() -> None:
    env = hand_env(series_of(np.random.default_rng(0).uniform(50, 150, 40)))
    env.reset(seed=1)
    rewards = [env.step(FLAT)[1] for _ in range(20)]
    assert rewards == [0.0] * 20 and env.equity == 1.0


def test_drawdown_limit_terminates_the_episode() -> None:
    # Down 5% a step: long loses 5%, 9.75%, 14.26%, ... and crosses 20% on the 5th step.
    env = hand_env(series_of(100.0 * 0.95 ** np.arange(30)), max_drawdown=0.2, transaction_cost=0)
    env.reset(options={"start": 4})
    done_at = None
    for i in range(1, 20):
        obs, _, terminated, truncated, _ = env.step(LONG)
        assert not truncated
        if terminated:
            done_at = i
            break
    assert done_at == 5
    assert env.drawdown == pytest.approx(1 - 0.95**5)
    assert obs[-1] == pytest.approx(1 - 0.95**5, rel=1e-6)


def test_drawdown_is_measured_from_the_peak() -> None:
    close = [100, 100, 100, 100, 100, 150, 150, 120, 110, 100, 100]
    env = hand_env(series_of(close), max_drawdown=0.3, transaction_cost=0)
    env.reset(options={"start": 4})
    results = [env.step(LONG)[2] for _ in range(5)]
    # 150 -> 100 is a 33% fall from the peak even though equity is still at its start.
    assert results == [False, False, False, False, True]


def test_leverage_cannot_make_equity_negative() -> None:
    env = hand_env(series_of([100, 100, 100, 100, 100, 50, 50]), max_position_size=10.0)
    env.reset(options={"start": 4})
    obs, r, terminated, _, _ = env.step(LONG)
    assert terminated and env.equity > 0 and math.isfinite(r)
    assert env.observation_space.contains(obs)


def test_position_is_capped_at_max_position_size() -> None:
    cfg = EnvConfig(window=4, max_position_size=0.5, position_levels=5, max_drawdown=1.0)
    env = TradingEnv(rising(200), cfg)
    assert env.levels.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    env.reset(seed=0)
    env.action_space.seed(0)
    seen = set()
    for _ in range(150):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        seen.add(env.position)
        assert abs(env.position) <= 0.5
        assert -1.0 <= obs[-3] <= 1.0
        if terminated or truncated:
            env.reset()
    assert seen == {-0.5, -0.25, 0.0, 0.25, 0.5}
    for bad in (-1, 5, 7):
        with pytest.raises(ValueError, match=r"not in 0\.\.4"):
            env.step(bad)


def test_truncation_at_episode_length_and_end_of_data() -> None:
    env = TradingEnv(rising(40), EnvConfig(window=4, episode_length=5))
    env.reset(options={"start": 10})
    flags = [env.step(FLAT)[3] for _ in range(5)]
    assert flags == [False, False, False, False, True]
    env.reset(options={"start": 36})  # only 3 steps of data left
    flags = [env.step(FLAT)[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_random_starts_are_seeded_and_leave_room_for_an_episode() -> None:
    env = TradingEnv(rising(200), EnvConfig(window=4, episode_length=50))
    starts = []
    for seed in range(30):
        env.reset(seed=seed)
        starts.append(env.t)
    assert all(4 <= s <= 199 - 50 for s in starts)
    assert len(set(starts)) > 10
    again = []
    for seed in range(30):
        env.reset(seed=seed)
        again.append(env.t)
    assert again == starts


def test_observation_holds_features_position_pnl_and_drawdown() -> None:
    s = rising(50)
    env = hand_env(s, transaction_cost=0)
    obs, _ = env.reset(options={"start": 10})
    assert obs.shape == (observation_size(4),) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:-3], s.features[7:11].ravel())
    obs, *_ = env.step(LONG)
    np.testing.assert_array_equal(obs[:-3], s.features[8:12].ravel())
    assert obs[-3] == 1.0
    assert obs[-2] == pytest.approx(math.log(1.01), rel=1e-6)
    assert obs[-1] == 0.0


def test_observation_shape_depends_only_on_window() -> None:
    a = TradingEnv(rising(100), EnvConfig(window=8))
    b = TradingEnv(load_market(EnvConfig(window=8)).test, EnvConfig(window=8, max_drawdown=0.5))
    assert a.observation_space == b.observation_space
    assert TradingEnv(rising(100), EnvConfig(window=9)).observation_space != a.observation_space


def test_series_too_short_for_window_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="window 8 needs at least 10"):
        TradingEnv(rising(9), EnvConfig(window=8))


def test_pickles_with_its_state() -> None:
    env = TradingEnv(rising(100), EnvConfig(window=4))
    env.reset(seed=3)
    env.step(LONG)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.equity == env.equity and clone.t == env.t
    np.testing.assert_array_equal(clone.step(SHORT)[0], env.step(SHORT)[0])


def _make(seed: int):
    def make() -> TradingEnv:
        cfg = EnvConfig(window=8, synthetic_length=600, synthetic_seed=seed)
        return TradingEnv(load_market(cfg).train, cfg)

    return make


def test_works_under_sb3_vector_envs() -> None:
    import cloudpickle
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    # SubprocVecEnv sends factories to spawned workers by cloudpickle; check that here and
    # fork below, which starts in a fraction of the time a spawned torch import takes.
    assert isinstance(cloudpickle.loads(cloudpickle.dumps(_make(0)))(), TradingEnv)
    dummy = VecNormalize(DummyVecEnv([_make(0), _make(1)]))
    sub = SubprocVecEnv([_make(0), _make(1)], start_method="fork")
    try:
        for venv in (dummy, sub):
            venv.seed(0)
            obs = venv.reset()
            assert obs.shape == (2, observation_size(8))
            for _ in range(300):
                obs, rewards, dones, infos = venv.step(np.array([LONG, SHORT]))
                assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rewards))
            assert "terminal_observation" in infos[0] or not dones[0]
    finally:
        sub.close()
