"""A training state as data: the dataclasses, and their JSON-and-arrays form both ways.

:func:`to_data` splits a :class:`TrainingState` into a JSON document (counters, RNG states,
episodes, settings) and named arrays; :func:`from_data` puts them back together, checking
the form of every value (types, counts, each array's dtype and shape, finite floats) and
trying each RNG state on a fresh generator, so that a state that would fail later fails
here. :mod:`perfmode.checkpoint.io` reads and writes the files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfmode.checkpoint.errors import DamagedCheckpoint

FORMAT = 1
# Only numpy's own bit generators are looked up by the name a file gives.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


@dataclass
class Normalization:
    """VecNormalize's statistics and settings."""

    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_count: float
    ret_mean: np.ndarray
    ret_var: np.ndarray
    ret_count: float
    returns: np.ndarray  # each env's discounted return so far
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float
    norm_obs: bool
    norm_reward: bool


@dataclass
class Envs:
    """Where each env stands at a rollout boundary, and what the model last saw of it."""

    generators: list[dict[str, Any]]  # each env's numpy Generator: bit_generator.state
    episodes: list[dict[str, Any]] | None  # each env's get_state(), when it has one
    monitor_returns: np.ndarray
    monitor_lengths: np.ndarray
    monitor_count: int
    last_obs: np.ndarray
    last_original_obs: np.ndarray | None
    last_episode_starts: np.ndarray

    @property
    def n(self) -> int:
        return len(self.generators)


@dataclass
class TrainingState:
    """Everything a run needs to go on exactly where it was; data only."""

    policy: dict[str, Any]
    optimizer: dict[str, Any]
    num_timesteps: int
    n_updates: int
    python_rng: list[Any]  # random.getstate(), tuples as lists
    numpy_rng: dict[str, Any]  # np.random.get_state(legacy=False)
    torch_rng: np.ndarray
    cuda_rng: list[np.ndarray]
    envs: Envs | None
    normalization: Normalization | None
    episode_infos: list[dict[str, float]]  # SB3's ep_info_buffer: r, l, t


def to_data(s: TrainingState) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    numpy_rng = dict(s.numpy_rng)
    key = np.asarray(numpy_rng["state"]["key"], dtype=np.uint32)
    numpy_rng["state"] = {"pos": int(numpy_rng["state"]["pos"])}
    arrays: dict[str, np.ndarray] = {"torch_rng": s.torch_rng, "numpy_key": key}
    arrays.update({f"cuda_rng_{i}": a for i, a in enumerate(s.cuda_rng)})
    doc: dict[str, Any] = {
        "format": FORMAT,
        "num_timesteps": s.num_timesteps,
        "n_updates": s.n_updates,
        "rng": {"python": s.python_rng, "numpy": numpy_rng, "cuda_devices": len(s.cuda_rng)},
        "episode_infos": s.episode_infos,
        "envs": None,
        "normalization": None,
    }
    if (e := s.envs) is not None:
        doc["envs"] = {
            "generators": e.generators,
            "episodes": e.episodes,
            "monitor_count": e.monitor_count,
            "has_original_obs": e.last_original_obs is not None,
        }
        arrays.update(
            monitor_returns=e.monitor_returns,
            monitor_lengths=e.monitor_lengths,
            last_obs=e.last_obs,
            last_episode_starts=e.last_episode_starts,
        )
        if e.last_original_obs is not None:
            arrays["last_original_obs"] = e.last_original_obs
    if (n := s.normalization) is not None:
        doc["normalization"] = {
            k: getattr(n, k)
            for k in (
                "obs_count",
                "ret_count",
                "clip_obs",
                "clip_reward",
                "gamma",
                "epsilon",
                "norm_obs",
                "norm_reward",
            )
        }
        arrays.update(
            obs_mean=n.obs_mean,
            obs_var=n.obs_var,
            ret_mean=n.ret_mean,
            ret_var=n.ret_var,
            returns=n.returns,
        )
    return doc, arrays


def from_data(
    doc: dict[str, Any], a: dict[str, np.ndarray], policy: dict[str, Any], opt: dict[str, Any]
) -> TrainingState:
    if doc["format"] != FORMAT:
        raise DamagedCheckpoint(
            f"state.json has format {doc['format']!r}; this perfmode reads {FORMAT}"
        )
    rng = doc["rng"]
    numpy_rng = dict(rng["numpy"])
    numpy_rng["state"] = {
        "key": _array(a, "numpy_key", np.uint32, (624,)),
        "pos": rng["numpy"]["state"]["pos"],
    }
    state = TrainingState(
        policy=policy,
        optimizer=opt,
        num_timesteps=_count(doc["num_timesteps"]),
        n_updates=_count(doc["n_updates"]),
        python_rng=rng["python"],
        numpy_rng=numpy_rng,
        torch_rng=_array(a, "torch_rng", np.uint8),
        cuda_rng=[_array(a, f"cuda_rng_{i}", np.uint8) for i in range(_count(rng["cuda_devices"]))],
        envs=_envs(doc["envs"], a),
        normalization=normalization(doc["normalization"], a),
        episode_infos=[
            {"r": float(ep["r"]), "l": _count(ep["l"]), "t": float(ep["t"])}
            for ep in doc["episode_infos"]
        ],
    )
    _try_rng(state)
    return state


def _envs(d: dict[str, Any] | None, a: dict[str, np.ndarray]) -> Envs | None:
    if d is None:
        return None
    gens = list(d["generators"])
    n = len(gens)
    for g in gens:
        generator_from_state(g)  # raises on anything numpy would not take
    episodes = d["episodes"]
    if episodes is not None and (
        len(episodes) != n or not all(isinstance(ep, dict) for ep in episodes)
    ):
        raise ValueError("one episode state per env expected")
    last_obs = _array(a, "last_obs", np.float32)
    if last_obs.shape[:1] != (n,):
        raise ValueError(f"last_obs has shape {last_obs.shape} for {n} envs")
    return Envs(
        generators=gens,
        episodes=episodes,
        monitor_returns=_array(a, "monitor_returns", np.float32, (n,)),
        monitor_lengths=_array(a, "monitor_lengths", np.int32, (n,)),
        monitor_count=_count(d["monitor_count"]),
        last_obs=last_obs,
        last_original_obs=_array(a, "last_original_obs", np.float32, last_obs.shape)
        if d["has_original_obs"]
        else None,
        last_episode_starts=_array(a, "last_episode_starts", np.bool_, (n,)),
    )


def normalization(d: dict[str, Any] | None, a: dict[str, np.ndarray]) -> Normalization | None:
    if d is None:
        return None
    obs_mean = _array(a, "obs_mean", np.float64)
    return Normalization(
        obs_mean=obs_mean,
        obs_var=_array(a, "obs_var", np.float64, obs_mean.shape),
        obs_count=_number(d["obs_count"]),
        ret_mean=_array(a, "ret_mean", np.float64, ()),
        ret_var=_array(a, "ret_var", np.float64, ()),
        ret_count=_number(d["ret_count"]),
        returns=_array(a, "returns", np.float64),
        clip_obs=_number(d["clip_obs"]),
        clip_reward=_number(d["clip_reward"]),
        gamma=_number(d["gamma"]),
        epsilon=_number(d["epsilon"]),
        norm_obs=_flag(d["norm_obs"]),
        norm_reward=_flag(d["norm_reward"]),
    )


def _array(
    a: dict[str, np.ndarray], name: str, dtype: Any, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    if name not in a:
        raise ValueError(f"state.npz has no {name!r}")
    arr = a[name]
    if arr.dtype != np.dtype(dtype) or (shape is not None and arr.shape != shape):
        raise ValueError(f"state.npz {name!r} is {arr.dtype}{list(arr.shape)}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"state.npz {name!r} holds NaN or infinity")
    return arr


def _count(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{v!r} is not a count")
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise ValueError(f"{v!r} is not a finite number")
    return float(v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{v!r} is not true or false")
    return v


def python_rng_state(saved: list[Any]) -> tuple[Any, ...]:
    """``random.setstate``'s tuple from its JSON form (lists where it had tuples)."""
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A numpy Generator continuing the stream ``bit_generator.state`` described."""
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    bitgen = getattr(np.random, name)()
    bitgen.state = state
    return np.random.Generator(bitgen)


def _try_rng(s: TrainingState) -> None:
    """Set each saved RNG state on a fresh generator: one that would fail later fails here."""
    import torch

    random.Random().setstate(python_rng_state(s.python_rng))
    np.random.RandomState().set_state(s.numpy_rng)
    try:
        torch.Generator().set_state(torch.from_numpy(s.torch_rng.copy()))
    except RuntimeError as e:
        raise ValueError(f"torch RNG state: {e}") from None
