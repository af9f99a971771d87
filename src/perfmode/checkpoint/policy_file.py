"""A policy read from a file without running any of it.

A Stable-Baselines3 ``.zip`` keeps the policy's weights in ``policy.pth`` and everything
else in ``data``, where schedules, spaces and classes are cloudpickled: ``PPO.load`` runs
whatever those pickles say. Here the weights are read with ``torch.load(weights_only=True)``,
the network is rebuilt from their shapes (an MLP actor-critic with a discrete action, what
perfmode trains), and ``data`` is read as plain JSON for the activation function only.
A file this cannot rebuild is refused; ``--trust-checkpoint`` loads it the SB3 way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from perfmode.checkpoint.io import DamagedCheckpoint, Expected, load_weights, read_weights
from perfmode.checkpoint.legacy import check_zip, zip_data, zip_member
from perfmode.errors import PerfmodeError

# Activation functions a policy may name; looked up in torch.nn by these names only.
_ACTIVATIONS = ("Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "Mish")
_LAYER = re.compile(r"mlp_extractor\.(policy_net|value_net)\.(\d+)\.weight")


def zip_weights(path: Path, expect: Expected) -> tuple[dict[str, Any], str]:
    """The policy weights in an SB3 zip and its activation function's name."""
    try:
        check_zip(path, expect.optimizer_limit)
        where = f"{path}:policy.pth"
        weights = load_weights(zip_member(path, "policy.pth", expect.policy_limit), where, expect)
        activation = _activation(zip_data(path).get("policy_kwargs"))
    except DamagedCheckpoint as e:
        reason = str(e).removeprefix(f"{path}:").removeprefix(f"{path} ").strip()
        raise DamagedCheckpoint(
            f"cannot load it as a Stable-Baselines3 PPO model: {reason}"
        ) from None
    return weights, activation


def folder_weights(folder: Path, expect: Expected) -> dict[str, Any]:
    return read_weights(folder / "policy.pth", expect)


def build_policy(weights: dict[str, Any], activation: str = "Tanh") -> Any:
    """An ActorCriticPolicy shaped by ``weights`` (which it then holds), on the CPU.

    The weights have been checked (dense float32, finite, no larger than ``Expected``
    allows); the layer sizes are checked against the config's limits here, before a
    network of them is allocated.
    """
    import numpy as np
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy

    try:
        layers: dict[str, dict[int, Any]] = {"policy_net": {}, "value_net": {}}
        for key, value in weights.items():
            if m := _LAYER.fullmatch(key):
                layers[m.group(1)][int(m.group(2))] = value
        pi = [int(layers["policy_net"][i].shape[0]) for i in sorted(layers["policy_net"])]
        vf = [int(layers["value_net"][i].shape[0]) for i in sorted(layers["value_net"])]
        action = weights["action_net.weight"]
        first = next(
            (layers[n][min(layers[n])] for n in ("policy_net", "value_net") if layers[n]),
            action,
        )
        n_obs, n_actions = int(first.shape[1]), int(action.shape[0])
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as e:
        raise PerfmodeError(
            f"its weights are not an MLP actor-critic with discrete actions ({e!r:.120})"
        ) from None
    _check_sizes(pi, vf)
    obs_space = spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)
    policy = ActorCriticPolicy(
        obs_space,
        spaces.Discrete(n_actions),
        lr_schedule=lambda _: 0.0,
        net_arch={"pi": pi, "vf": vf},
        activation_fn=getattr(torch.nn, activation),
    )
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise PerfmodeError(
            f"its weights do not fit an MLP actor-critic ({str(e).splitlines()[0]})"
        ) from None
    policy.set_training_mode(False)
    return policy


def _check_sizes(pi: list[int], vf: list[int]) -> None:
    from perfmode.config.schema import PPOConfig
    from perfmode.config.sections import from_mapping

    for arch in (pi, vf):
        if arch:
            try:
                from_mapping(PPOConfig, {"net_arch": arch}, "ppo")
            except PerfmodeError as e:
                raise PerfmodeError(
                    f"its layers are beyond what perfmode trains ({str(e).removeprefix('config: ')[:160]})"
                ) from None


def _activation(kwargs: Any) -> str:
    # A plain dict: JSON-able kwargs, so the default activation. A serialized one keeps a
    # readable copy of each entry beside the pickle: "<class 'torch.nn....ReLU'>".
    if not isinstance(kwargs, dict) or "activation_fn" not in kwargs:
        return "Tanh"
    m = re.search(r"\.(\w+)'>$", str(kwargs["activation_fn"]))
    name = m.group(1) if m else str(kwargs["activation_fn"])
    if name not in _ACTIVATIONS:
        raise DamagedCheckpoint(f"its activation function {name!r} is not one perfmode knows")
    return name
