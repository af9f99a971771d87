"""Where the fast path does not apply, it is SB3's own code: same weights, warnings, errors.

``LeanPPO``, ``LeanMlpPolicy`` and ``TrainingVecNormalize`` stand in for SB3's ``PPO``,
``MlpPolicy`` and ``VecNormalize``. Each case here is a family of configurations SB3 supports
that the lean classes leave to SB3's code: a discrete or dict observation space, integer and
image observations, continuous, multi-discrete and binary action spaces (with and without
state-dependent exploration), ``clip_range_vf`` and ``target_kl``, a features extractor
with batch norm and dropout, the warnings SB3 gives, VecNormalize's arguments and its
original observations and rewards. Each runs a tiny toy env written here through both
classes and asks for the same result, bit for bit.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

from perfmode.env.vec_env import TrainingVecNormalize
from perfmode.training.fastppo import LeanPPO
from perfmode.training.policy import LeanMlpPolicy


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # A small MLP gains nothing from a second thread and, on a busy machine, loses a lot to
    # it; the conftest puts the count back.
    torch.set_num_threads(1)


ACTIONS = {
    "discrete": spaces.Discrete(3),
    "box": spaces.Box(-1.0, 1.0, (2,), np.float32),
    "multidiscrete": spaces.MultiDiscrete([3, 2]),
    "multibinary": spaces.MultiBinary(3),
}


class ToyEnv(gym.Env):
    """Three actions (or another action space); the reward depends on the action and the
    observation; 12-step episodes cut by a time limit (so timeouts bootstrap), and a few that
    end early."""

    def __init__(self, kind: str = "box", action: str = "discrete") -> None:
        self.kind = kind
        self.observation_space = {
            "box": spaces.Box(-2.0, 2.0, (4,), np.float32),
            "int": spaces.Box(-5, 5, (4,), np.int64),
            "image": spaces.Box(0, 255, (6, 6, 1), np.uint8),
            "discrete": spaces.Discrete(7),
            "dict": spaces.Dict(
                {"a": spaces.Box(-2.0, 2.0, (3,), np.float32), "b": spaces.Discrete(4)}
            ),
        }[kind]
        self.action_space = ACTIONS[action]
        self._t = 0

    def _obs(self) -> Any:
        rng = self.np_random
        if self.kind == "box":
            return rng.uniform(-2, 2, 4).astype(np.float32)
        if self.kind == "int":
            return rng.integers(-5, 6, 4).astype(np.int64)
        if self.kind == "image":
            return rng.integers(0, 256, (6, 6, 1)).astype(np.uint8)
        if self.kind == "discrete":
            return int(rng.integers(7))
        return {"a": rng.uniform(-2, 2, 3).astype(np.float32), "b": int(rng.integers(4))}

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._last = self._obs()
        return self._last, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        first = np.asarray(self._last["a"] if self.kind == "dict" else self._last).flat[0]
        reward = float(np.sum(action, dtype=np.float64) - 1) * float(first) + 0.1
        self._last = self._obs()
        terminated = bool(self.np_random.random() < 0.03)
        return self._last, reward, terminated, self._t >= 12, {}


def _venv(kind: str, n_envs: int = 2, action: str = "discrete") -> DummyVecEnv:
    return DummyVecEnv([lambda: ToyEnv(kind, action)] * n_envs)


def _learn(algo: type, policy: Any, venv: Any, steps: int = 128, **kwargs: Any) -> Any:
    model = algo(policy, venv, seed=3, n_steps=32, batch_size=16, n_epochs=2, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(steps)
    return model


def _assert_same_weights(ours: Any, ref: Any) -> None:
    a, b = ours.policy.state_dict(), ref.policy.state_dict()
    assert a.keys() == b.keys()
    for name in b:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("kind", ["box", "int", "image", "discrete"])
def test_lean_classes_learn_sb3s_weights_for_each_observation_space(kind: str) -> None:
    ref = _learn(PPO, "MlpPolicy", _venv(kind))
    ours = _learn(LeanPPO, LeanMlpPolicy, _venv(kind))
    _assert_same_weights(ours, ref)


@pytest.mark.parametrize(
    "action,kwargs",
    [
        ("box", {}),
        ("box", {"use_sde": True, "sde_sample_freq": 4}),
        ("multidiscrete", {}),
        ("multibinary", {}),
    ],
)
def test_lean_classes_learn_sb3s_weights_for_each_action_space(action: str, kwargs: dict) -> None:
    ref = _learn(PPO, "MlpPolicy", _venv("box", action=action), **kwargs)
    ours = _learn(LeanPPO, LeanMlpPolicy, _venv("box", action=action), **kwargs)
    _assert_same_weights(ours, ref)


@pytest.mark.parametrize("kwargs", [{"clip_range_vf": 0.05}, {"target_kl": 1e-6}])
def test_clip_range_vf_and_target_kl_learn_sb3s_weights(kwargs: dict) -> None:
    ref = _learn(PPO, "MlpPolicy", _venv("box"), **kwargs)
    ours = _learn(LeanPPO, LeanMlpPolicy, _venv("box"), **kwargs)
    _assert_same_weights(ours, ref)
    assert ours.logger.name_to_value.keys() == ref.logger.name_to_value.keys()
    # The option changes what SB3 learns here: the case is not the plain update again.
    plain = _learn(PPO, "MlpPolicy", _venv("box"))
    weights = plain.policy.state_dict()
    assert any(not torch.equal(t, weights[k]) for k, t in ref.policy.state_dict().items())


def test_a_dict_observation_space_learns_sb3s_weights() -> None:
    ref = _learn(PPO, "MultiInputPolicy", _venv("dict"))
    ours = _learn(LeanPPO, "MultiInputPolicy", _venv("dict"))
    _assert_same_weights(ours, ref)


class BatchNormDropout(BaseFeaturesExtractor):
    """Flatten, batch norm, dropout: only right if train/eval mode is set as SB3 sets it."""

    def __init__(self, observation_space: spaces.Space) -> None:
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        self.flatten = nn.Flatten()
        self.norm = nn.BatchNorm1d(self.features_dim)
        self.dropout = nn.Dropout(0.5)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.flatten(obs)))


def test_batch_norm_and_dropout_see_sb3s_train_and_eval_modes() -> None:
    kw = {"policy_kwargs": {"features_extractor_class": BatchNormDropout}}
    ref = _learn(PPO, "MlpPolicy", _venv("box"), **kw)
    ours = _learn(LeanPPO, LeanMlpPolicy, _venv("box"), **kw)
    _assert_same_weights(ours, ref)  # incl. the batch norm's running statistics
    norm = ours.policy.features_extractor.norm
    assert norm.num_batches_tracked > 0 and not torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_the_update_logs_what_sb3s_logs() -> None:
    ref = _learn(PPO, "MlpPolicy", _venv("box"))
    ours = _learn(LeanPPO, LeanMlpPolicy, _venv("box"))
    theirs = ref.logger.name_to_value
    assert set(ours.logger.name_to_value) == set(theirs)
    for key, value in theirs.items():
        assert ours.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


class _Locals(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []

    def _on_step(self) -> bool:
        if not self.seen:
            keep = ("actions", "clipped_actions", "values", "log_probs", "obs_tensor", "rewards")
            self.seen.append({k: type(self.locals[k]).__name__ for k in keep})
        return True


def test_callbacks_see_the_locals_sb3s_rollout_gives_them() -> None:
    seen = []
    for algo, policy in ((PPO, "MlpPolicy"), (LeanPPO, LeanMlpPolicy)):
        cb = _Locals()
        model = algo(policy, _venv("box"), seed=0, n_steps=16, batch_size=16, n_epochs=1)
        model.learn(32, callback=cb)
        seen.append(cb.seen)
    assert seen[0] == seen[1]


def test_sb3s_warning_about_an_mlp_policy_on_a_gpu() -> None:
    for algo, policy in ((PPO, "MlpPolicy"), (LeanPPO, LeanMlpPolicy)):
        model = algo(policy, _venv("box"), n_steps=16, batch_size=16)
        model.device = torch.device("cuda")  # as if it were: the warning is all that is asked
        with pytest.warns(UserWarning, match="You are trying to run PPO on the GPU"):
            model._maybe_recommend_cpu()


# -- TrainingVecNormalize -----------------------------------------------------------------


def _both(kind: str, *args: Any, **kwargs: Any) -> tuple[VecNormalize, VecNormalize]:
    ours, ref = (
        TrainingVecNormalize(_venv(kind), *args, **kwargs),
        VecNormalize(_venv(kind), *args, **kwargs),
    )
    ours.seed(5)
    ref.seed(5)
    return ours, ref


def _step_both(ours: VecNormalize, ref: VecNormalize, steps: int = 40) -> None:
    def same(a: Any, b: Any) -> None:
        if isinstance(b, dict):
            assert a.keys() == b.keys()
            for k in b:
                same(a[k], b[k])
            return
        np.testing.assert_array_equal(a, b)
        assert np.asarray(a).dtype == np.asarray(b).dtype

    same(ours.reset(), ref.reset())
    same(ours.get_original_obs(), ref.get_original_obs())
    for a in np.random.default_rng(1).integers(0, 3, size=(steps, 2)):
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        same(o1, o2)
        same(r1, r2)
        same(d1, d2)
        for x, y in zip(i1, i2, strict=True):
            if "terminal_observation" in y:
                same(x["terminal_observation"], y["terminal_observation"])
        same(ours.get_original_obs(), ref.get_original_obs())
        same(ours.get_original_reward(), ref.get_original_reward())
        same(ours.normalize_reward(ours.get_original_reward()), r2)
        same(ours.unnormalize_obs(o1), ref.unnormalize_obs(o2))


@pytest.mark.parametrize(
    "kind,kwargs",
    [
        ("box", {"norm_obs": False}),
        ("box", {"norm_reward": False}),
        ("int", {}),  # integer observations: float statistics, as np.mean makes them
        ("image", {}),
        ("discrete", {"norm_obs": False}),
        ("dict", {"norm_obs_keys": ["a"]}),
    ],
)
def test_training_vec_normalize_steps_like_sb3s_for_each_space(kind: str, kwargs: dict) -> None:
    ours, ref = _both(kind, **kwargs)
    _step_both(ours, ref)
    assert ours.observation_space == ref.observation_space
    if getattr(ref, "obs_rms", None) is not None and not isinstance(ref.obs_rms, dict):
        assert np.array_equal(ours.obs_rms.mean, ref.obs_rms.mean)
        assert np.array_equal(ours.obs_rms.var, ref.obs_rms.var)
        assert ours.obs_rms.mean.dtype == ref.obs_rms.mean.dtype


def test_training_vec_normalize_takes_sb3s_arguments_and_refuses_what_it_refuses() -> None:
    # Positional arguments, as VecNormalize's signature allows.
    ours, ref = _both("box", True, True, False, 5.0, 5.0, 0.9)
    _step_both(ours, ref, steps=10)
    for kind, kwargs in (("discrete", {}), ("box", {"norm_obs_keys": ["a"]})):
        with pytest.raises(ValueError) as theirs:
            VecNormalize(_venv(kind), **kwargs)
        with pytest.raises(ValueError) as mine:
            TrainingVecNormalize(_venv(kind), **kwargs)
        assert str(mine.value) == str(theirs.value)


def test_a_scalar_reward_normalises_as_sb3s() -> None:
    ours, ref = _both("box")
    _step_both(ours, ref, steps=10)
    for reward in (3.5, np.float64(-120.0), np.array(7.0)):
        a, b = ours.normalize_reward(reward), ref.normalize_reward(reward)
        np.testing.assert_array_equal(a, b)
        assert np.asarray(a).dtype == np.asarray(b).dtype


@pytest.mark.parametrize("kwargs", [{}, {"norm_obs": False}])
def test_training_vec_normalize_pickles_and_loads_like_sb3s(kwargs: dict) -> None:
    ours, ref = _both("box", **kwargs)
    _step_both(ours, ref, steps=10)
    ours2, ref2 = pickle.loads(pickle.dumps(ours)), pickle.loads(pickle.dumps(ref))
    ours2.set_venv(_venv("box"))
    ref2.set_venv(_venv("box"))
    ours2.seed(9)
    ref2.seed(9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step_both(ours2, ref2, steps=10)
