"""Checkpoints written before they became data only: ``model.zip``, ``rng.pkl``, ``vecnormalize.pkl``.

``rng.pkl`` and ``vecnormalize.pkl`` are pickles, which can run any code when loaded, so
they are read only when the user passes ``--trust-checkpoint``. Weights and counters come
from ``model.zip`` without unpickling (its ``policy.pth`` with ``weights_only=True``, its
``data`` as JSON). The result is an ordinary :class:`TrainingState`; the run's next
checkpoint is written in the new format.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.base.smallfile import human_bytes
from perfmode.checkpoint.files import MAX_JSON_BYTES, parse_json
from perfmode.checkpoint.io import (
    DamagedCheckpoint,
    Envs,
    Expected,
    Normalization,
    TrainingState,
    load_weights,
)

MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
RNG_FILE = "rng.pkl"


def check_zip(path: Path, limit: int) -> set[str]:
    """The names in an SB3 zip whose every member passes its CRC check.

    Each member's size is taken from its header first: none may inflate past ``limit``
    (what the model's weights and optimizer state take), so a zip bomb is refused unread.
    """
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > limit:
                    raise DamagedCheckpoint(
                        f"{path}: {info.filename[:60]} would inflate to "
                        f"{human_bytes(info.file_size)}, more than this model needs"
                    )
            bad = z.testzip()
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise DamagedCheckpoint(f"{path} is damaged ({str(e)[:160]})") from None
    if bad is not None:
        raise DamagedCheckpoint(f"{path} is damaged ({bad} fails its CRC check)")
    if "policy.pth" not in names:
        raise DamagedCheckpoint(f"{path} has no policy.pth: not a Stable-Baselines3 model")
    return names


def zip_member(path: Path, name: str, limit: int) -> bytes:
    """One member of a zip, refused unread if its header says it inflates past ``limit``."""
    try:
        with zipfile.ZipFile(path) as z:
            size = z.getinfo(name).file_size
            if size > limit:
                raise DamagedCheckpoint(
                    f"{path}: {name} would inflate to {human_bytes(size)}, more than the "
                    f"{human_bytes(limit)} it may take"
                )
            return z.read(name)
    except (OSError, KeyError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise DamagedCheckpoint(f"{path}: cannot read {name} ({str(e)[:160]})") from None


def zip_data(path: Path) -> dict[str, Any]:
    """The zip's ``data`` as plain JSON; serialized (pickled) entries are left as they are."""
    doc = parse_json(zip_member(path, "data", MAX_JSON_BYTES), f"{path}:data")
    if not isinstance(doc, dict):
        raise DamagedCheckpoint(f"{path}: its data is not a JSON object")
    return doc


def read_legacy(folder: Path, expect: Expected) -> TrainingState:
    """An old checkpoint as a TrainingState. Unpickles rng.pkl and vecnormalize.pkl: trust first."""
    from perfmode.checkpoint.files import load_torch_bytes

    model = folder / MODEL_FILE
    check_zip(model, expect.optimizer_limit)
    data = zip_data(model)
    where = f"{model}:policy.pth"
    policy = load_weights(zip_member(model, "policy.pth", expect.policy_limit), where, expect)
    optimizer = load_torch_bytes(
        zip_member(model, "policy.optimizer.pth", expect.optimizer_limit),
        f"{model}:policy.optimizer.pth",
    )
    rng = _unpickle(folder / RNG_FILE)
    vecnorm = folder / VECNORM_FILE
    normalization = read_vecnormalize(vecnorm) if vecnorm.exists() else None
    try:
        envs = _envs(rng.get("envs") or [])
        return TrainingState(
            policy=policy,
            optimizer=optimizer,
            num_timesteps=int(data["num_timesteps"]),
            n_updates=int(data["_n_updates"]),
            python_rng=[rng["python"][0], list(rng["python"][1]), rng["python"][2]],
            numpy_rng=_numpy_state(rng["numpy"]),
            torch_rng=rng["torch"].numpy().copy(),
            cuda_rng=[s.numpy().copy() for s in rng.get("cuda") or []],
            envs=envs,
            normalization=normalization,
            episode_infos=[],
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DamagedCheckpoint(
            f"{folder}: an old-format part is not what it should be ({e})"
        ) from None


def read_vecnormalize(path: Path) -> Normalization:
    """VecNormalize's statistics from its pickle (unpickles: trust first)."""
    vn = _unpickle(path)
    try:
        return _normalization(vn)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise DamagedCheckpoint(f"{path}: not VecNormalize statistics ({e!r})") from None


def _unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as e:  # unpickling reports a bad file with every type there is
        raise DamagedCheckpoint(f"{path}: cannot load it ({type(e).__name__}: {e})") from None


def _numpy_state(legacy: tuple[Any, ...]) -> dict[str, Any]:
    name, key, pos, has_gauss, gauss = legacy
    return {
        "bit_generator": name,
        "state": {"key": np.asarray(key, dtype=np.uint32), "pos": int(pos)},
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _envs(generators: list[Any]) -> Envs | None:
    # Old checkpoints kept each env's generator but not its episode: episodes restart.
    if not generators:
        return None
    n = len(generators)
    return Envs(
        generators=[g.bit_generator.state for g in generators],
        episodes=None,
        monitor_returns=np.zeros(n, dtype=np.float32),
        monitor_lengths=np.zeros(n, dtype=np.int32),
        monitor_count=0,
        last_obs=np.zeros((n, 0), dtype=np.float32),
        last_original_obs=None,
        last_episode_starts=np.ones(n, dtype=bool),
    )


def _normalization(vn: Any) -> Normalization:
    # The unpickled VecNormalize has no venv: its __getattr__ would recurse on anything
    # missing, so read its __dict__ only.
    d = vars(vn)
    obs_rms, ret_rms = d["obs_rms"], d["ret_rms"]
    return Normalization(
        obs_mean=np.asarray(obs_rms.mean, dtype=np.float64),
        obs_var=np.asarray(obs_rms.var, dtype=np.float64),
        obs_count=float(obs_rms.count),
        ret_mean=np.asarray(ret_rms.mean, dtype=np.float64),
        ret_var=np.asarray(ret_rms.var, dtype=np.float64),
        ret_count=float(ret_rms.count),
        returns=np.asarray(d.get("returns", np.zeros(0)), dtype=np.float64),
        clip_obs=float(d["clip_obs"]),
        clip_reward=float(d["clip_reward"]),
        gamma=float(d["gamma"]),
        epsilon=float(d["epsilon"]),
        norm_obs=bool(d["norm_obs"]),
        norm_reward=bool(d["norm_reward"]),
    )
