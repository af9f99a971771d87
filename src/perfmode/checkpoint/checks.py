"""What a checkpoint's tensors and statistics must be before a run touches them.

Every tensor is checked against the model that will take it (:class:`Expected`, made from
the model the config builds) before it is copied anywhere: a dense float32 tensor, laid out
contiguously (an expanded, stride-0 tensor is a view of a few bytes that claims terabytes),
of the parameter's shape, every value finite. The optimizer's hyperparameters must be in
the ranges Adam works in and its step a finite whole number; normalisation statistics must
be finite, variances non-negative, gamma, epsilon and the clips in range. What fails raises
:class:`DamagedCheckpoint` saying which file and what.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfmode.checkpoint.errors import DamagedCheckpoint

MAX_ENVS = 256  # training.n_envs' upper bound: an array per env has at most this many rows
# Beyond these, the running statistics' squares overflow float64 within a few updates.
MAX_STAT = 1e15
MAX_VAR = 1e30
_ADAM_FLAGS = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
_ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}


@dataclass(frozen=True)
class Expected:
    """The shapes of the model a checkpoint is for, and the sizes its files may have."""

    policy: dict[str, tuple[int, ...]] | None
    """Each weight's shape by name, in parameter order; None: known only by size."""
    weight_bytes: int
    """What the weights take: policy.pth may hold little more, the optimizer twice that."""
    obs_shape: tuple[int, ...] | None = None
    groups: list[dict[str, Any]] | None = None
    """The live optimizer's param groups (``params`` left out): the keys a saved one has."""

    @property
    def policy_limit(self) -> int:
        return self.weight_bytes + (1 << 20)

    @property
    def optimizer_limit(self) -> int:
        return 2 * self.weight_bytes + (2 << 20)

    @property
    def array_limit(self) -> int:
        """The largest array state.npz may hold: an observation per env, in float64."""
        obs = math.prod(self.obs_shape) if self.obs_shape else 1 << 16
        return (1 << 16) + 8 * MAX_ENVS * obs


def expected_of(policy: Any, obs_shape: tuple[int, ...]) -> Expected:
    """:class:`Expected` for a live SB3 policy (its weights and its optimizer)."""
    shapes = {k: tuple(v.shape) for k, v in policy.state_dict().items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in policy.optimizer.param_groups]
    weight_bytes = sum(4 * math.prod(s) for s in shapes.values())
    return Expected(shapes, weight_bytes, tuple(obs_shape), groups)


def mlp_weight_bytes(n_obs: int, hidden: list[int], n_actions: int) -> int:
    """What an actor-critic MLP of these sizes takes in float32 (both networks and heads)."""
    sizes = [n_obs, *hidden]
    body = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    return 4 * (2 * body + (hidden[-1] + 1) * (n_actions + 1))


def max_weight_bytes(n_obs: int | None, n_actions: int = 21) -> int:
    """The most an MLP within the config's limits takes (ppo.net_arch's bounds)."""
    from perfmode.config.schema import MAX_HIDDEN_WEIGHTS, MAX_LAYER_WIDTH, MAX_LAYERS

    edges = (n_obs or 1 << 12) + 1 + n_actions + 1 + MAX_LAYERS
    return 4 * 2 * (MAX_HIDDEN_WEIGHTS + edges * MAX_LAYER_WIDTH)


# -- tensors -------------------------------------------------------------------------------


def check_tensor(t: Any, where: str, shape: tuple[int, ...] | None = None) -> None:
    """A dense, contiguous float32 tensor of ``shape`` whose values are all finite."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise DamagedCheckpoint(f"{where} is a {type(t).__name__}, not a tensor")
    if t.layout != torch.strided or t.is_quantized or t.is_nested:
        raise DamagedCheckpoint(f"{where} is not a dense tensor")
    if t.dtype != torch.float32:
        raise DamagedCheckpoint(f"{where} is {t.dtype}, not float32")
    if shape is not None and tuple(t.shape) != shape:
        raise DamagedCheckpoint(f"{where} has shape {_shape(t)}, the model's is {list(shape)}")
    if t.numel() > 1 and (not t.is_contiguous() or 0 in t.stride()):
        raise DamagedCheckpoint(
            f"{where} is an expanded view ({_shape(t)} over {t.untyped_storage().nbytes():,} "
            "bytes), not stored weights"
        )
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise DamagedCheckpoint(f"{where} holds NaN or infinity")


def _shape(t: Any) -> str:
    text = str(list(t.shape))
    return text if len(text) < 60 else text[:57] + "..."


def check_policy(weights: dict[str, Any], expect: Expected, where: str) -> None:
    if not weights or not all(isinstance(k, str) for k in weights):
        raise DamagedCheckpoint(f"{where}: not a policy's weights")
    if expect.policy is not None:
        missing = [k for k in expect.policy if k not in weights]
        extra = [k for k in weights if k not in expect.policy]
        if missing or extra:
            names = ", ".join((missing or extra)[:3])
            what = "lacks" if missing else "has weights the model has not:"
            raise DamagedCheckpoint(f"{where}: {what} {names[:120]}")
    total = 0
    for name, t in weights.items():
        shape = expect.policy[name] if expect.policy is not None else None
        check_tensor(t, f"{where} {name[:60]}", shape)
        total += 4 * t.numel()
        if total > expect.weight_bytes:
            raise DamagedCheckpoint(
                f"{where}: weights larger than the {expect.weight_bytes:,} bytes of the model"
            )


def check_optimizer(opt: Any, shapes: list[tuple[int, ...]], expect: Expected, where: str) -> None:
    """An Adam state dict for parameters of ``shapes`` (in order), in Adam's working ranges."""
    if not isinstance(opt, dict) or set(opt) != {"state", "param_groups"}:
        raise DamagedCheckpoint(f"{where}: not an optimizer's state")
    groups, state = opt["param_groups"], opt["state"]
    if not isinstance(groups, list) or not isinstance(state, dict):
        raise DamagedCheckpoint(f"{where}: not an optimizer's state")
    if expect.groups is not None and len(groups) != len(expect.groups):
        raise DamagedCheckpoint(f"{where}: {len(groups)} parameter groups, the model has 1")
    seen: list[Any] = []
    for i, g in enumerate(groups):
        _check_group(g, expect.groups[i] if expect.groups else None, f"{where} group {i}")
        seen += g["params"]
    if seen != list(range(len(shapes))):
        raise DamagedCheckpoint(
            f"{where}: its groups do not list the model's {len(shapes)} weights"
        )
    for key, s in state.items():
        if not isinstance(key, int) or not 0 <= key < len(shapes):
            raise DamagedCheckpoint(f"{where}: state for a weight the model has not ({key!r:.40})")
        if not isinstance(s, dict) or set(s) != _ADAM_STATE:
            raise DamagedCheckpoint(f"{where}: weight {key}'s state is not Adam's")
        for name in ("exp_avg", "exp_avg_sq"):
            check_tensor(s[name], f"{where} weight {key} {name}", shapes[key])
        if bool((s["exp_avg_sq"] < 0).any()):
            raise DamagedCheckpoint(f"{where} weight {key} exp_avg_sq is negative")
        _check_step(s["step"], f"{where} weight {key} step")


def _check_group(g: Any, live: dict[str, Any] | None, where: str) -> None:
    if not isinstance(g, dict) or not isinstance(g.get("params"), list):
        raise DamagedCheckpoint(f"{where}: not a parameter group")
    if live is not None and set(g) - {"params"} != set(live):
        raise DamagedCheckpoint(f"{where}: its keys are not those of this torch's Adam")
    betas = g.get("betas")
    if not (
        isinstance(betas, list | tuple) and len(betas) == 2 and all(_in(b, 0, 1) for b in betas)
    ):
        raise DamagedCheckpoint(f"{where}: betas {_short(betas)} are not two numbers in [0, 1)")
    for key, low, high in (("lr", 0, 1), ("eps", 1e-30, 1), ("weight_decay", 0, 1)):
        if not _in(g.get(key), low, high, closed=True):
            raise DamagedCheckpoint(f"{where}: {key} {_short(g.get(key))} is out of range")
    for key in _ADAM_FLAGS:
        if key in g and g[key] is not False:
            raise DamagedCheckpoint(f"{where}: {key} is {_short(g[key])}; perfmode's Adam has none")
    for key in ("foreach", "fused"):
        if key in g and g[key] not in (None, True, False):
            raise DamagedCheckpoint(f"{where}: {key} is {_short(g[key])}, not true or false")
    if g.get("fused"):
        raise DamagedCheckpoint(f"{where}: fused Adam is not what perfmode trains with")


def _check_step(step: Any, where: str) -> None:
    import torch

    if isinstance(step, torch.Tensor):
        if step.numel() != 1 or step.dtype not in (torch.float32, torch.float64, torch.int64):
            raise DamagedCheckpoint(f"{where} is not one number")
        step = step.item()
    if not _in(step, 0, 2**53, closed=True) or float(step) != math.floor(step):
        raise DamagedCheckpoint(f"{where} {_short(step)} is not a whole number of steps")


def _in(v: Any, low: float, high: float, *, closed: bool = False) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return False
    return low <= v <= high if closed else low <= v < high


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# -- normalisation -------------------------------------------------------------------------


def check_normalization(
    n: Any, obs_shape: tuple[int, ...] | None, arrays: str, settings: str
) -> None:
    """VecNormalize's statistics and settings, in the ranges its update stays finite in.

    ``arrays`` and ``settings`` name the files the statistics and the settings came from.
    """
    where = arrays
    if obs_shape is not None and n.obs_mean.shape != obs_shape:
        return  # restore() says which env settings changed; that is no damage
    for name, arr, bound in (
        ("obs_mean", n.obs_mean, MAX_STAT),
        ("obs_var", n.obs_var, MAX_VAR),
        ("ret_mean", n.ret_mean, MAX_STAT),
        ("ret_var", n.ret_var, MAX_VAR),
        ("returns", n.returns, MAX_STAT),
    ):
        if arr.size and float(np.max(np.abs(arr))) > bound:
            raise DamagedCheckpoint(f"{where}: normalisation {name} is beyond {bound:g}")
    if np.any(n.obs_var < 0) or np.any(n.ret_var < 0):
        raise DamagedCheckpoint(f"{where}: a normalisation variance is negative")
    if n.returns.ndim != 1 or len(n.returns) > MAX_ENVS:
        raise DamagedCheckpoint(f"{where}: normalisation returns are not one per env")
    for name, low, high in (
        ("obs_count", 0, MAX_STAT),
        ("ret_count", 0, MAX_STAT),
        ("gamma", 0, 1),
        ("epsilon", 1e-30, 1),
        ("clip_obs", 1e-6, 1e6),
        ("clip_reward", 1e-6, 1e6),
    ):
        if not _in(getattr(n, name), low, high, closed=True):
            raise DamagedCheckpoint(
                f"{settings}: normalisation {name} {_short(getattr(n, name))} is not in [{low:g}, {high:g}]"
            )


# -- before a save -------------------------------------------------------------------------


def first_non_finite(policy: dict[str, Any], optimizer: dict[str, Any]) -> str | None:
    """The name of the first weight or optimizer tensor holding NaN or infinity, if any."""
    import torch

    for name, t in policy.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    for key, s in optimizer.get("state", {}).items():
        for name, t in s.items():
            finite = not isinstance(t, torch.Tensor) or not t.is_floating_point()
            if not finite and not bool(torch.isfinite(t).all()):
                return f"optimizer state {key} {name}"
    return None
