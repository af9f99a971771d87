"""What a checkpoint holds, in formats that can only be read as data.

A checkpoint folder holds, besides ``meta.json``:

    policy.pth            the policy's weights (a torch state dict)
    policy.optimizer.pth  the optimizer's state (a torch state dict)
    state.json            counters, RNG states, each env's episode, normalisation settings
    state.npz             the arrays: torch RNG, normalisation statistics, last observations

The files are read by :mod:`perfmode.checkpoint.files` (bounded, regular files only, the
``.pth`` files with ``torch.load(weights_only=True)``, ``state.npz`` without pickles), and
every tensor and array is checked by :mod:`perfmode.checkpoint.checks` against the model
that will take it (:class:`Expected`) before the run touches it; RNG states are tried on
fresh generators. A part that fails any check raises :class:`DamagedCheckpoint`, and the
caller falls back to an older checkpoint. The names ``policy.pth`` / ``policy.optimizer.pth`` are SB3's own, so
``model.set_parameters({"policy": ..., "policy.optimizer": ...})`` takes them as they are.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.checkpoint.checks import (
    Expected,
    check_normalization,
    check_optimizer,
    check_policy,
    first_non_finite,
    max_weight_bytes,
)
from perfmode.checkpoint.data import (
    Envs,
    Normalization,
    TrainingState,
    from_data,
    generator_from_state,
    normalization,
    python_rng_state,
    to_data,
)
from perfmode.checkpoint.errors import DamagedCheckpoint
from perfmode.checkpoint.files import (
    MAX_JSON_BYTES,
    load_torch_bytes,
    load_torch_file,
    read_json_object,
    read_npz,
)

# Read and written here; defined beside the checks and the data form.
__all__ = [
    "DamagedCheckpoint",
    "Envs",
    "Expected",
    "Normalization",
    "TrainingState",
    "generator_from_state",
    "python_rng_state",
]

POLICY_FILE = "policy.pth"
OPTIMIZER_FILE = "policy.optimizer.pth"
STATE_FILE = "state.json"
ARRAYS_FILE = "state.npz"

# -- writing -------------------------------------------------------------------------


def write_state(folder: Path, state: TrainingState) -> list[Path]:
    """Write the four files into ``folder``; returns them (the caller fsyncs the folder).

    A state whose weights or optimizer hold NaN or infinity is refused before anything is
    written: a poisoned checkpoint would be resumed from, and poison every run after it.
    """
    bad = first_non_finite(state.policy, state.optimizer)
    if bad is not None:
        raise DamagedCheckpoint(
            f"not saving a checkpoint at {state.num_timesteps:,} steps: {bad} holds NaN or infinity"
        )
    doc, arrays = to_data(state)
    files = {
        POLICY_FILE: _torch_bytes(state.policy),
        OPTIMIZER_FILE: _torch_bytes(state.optimizer),
        ARRAYS_FILE: _npz_bytes(arrays),
        STATE_FILE: (json.dumps(doc) + "\n").encode(),
    }
    written = []
    for name, data in files.items():
        # Plain writes: a full disk is an OSError here, not an error deep in torch's writer.
        path = folder / name
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        written.append(path)
    return written


def _torch_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# -- reading -------------------------------------------------------------------------


def read_weights(path: Path, expect: Expected | None = None) -> dict[str, Any]:
    """A policy's weights from ``path``, each checked against ``expect`` (unpickling nothing
    but tensors and plain data); without it, any MLP within the config's limits."""
    expect = expect or Expected(None, max_weight_bytes(None))
    return _policy(load_torch_file(path, expect.policy_limit), expect, str(path))


def load_weights(data: bytes, where: str, expect: Expected) -> dict[str, Any]:
    """The same from bytes already read (a member of a Stable-Baselines3 zip)."""
    return _policy(load_torch_bytes(data, where), expect, where)


def _policy(obj: Any, expect: Expected, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DamagedCheckpoint(f"{where}: not a torch state dict (a {type(obj).__name__})")
    check_policy(obj, expect, where)
    return obj


def check_state(state: TrainingState, expect: Expected, where: Path) -> None:
    """The checks of :mod:`perfmode.checkpoint.checks` on a state read by any reader."""
    check_policy(state.policy, expect, str(where / POLICY_FILE))
    shapes = [tuple(t.shape) for t in state.policy.values()]
    check_optimizer(state.optimizer, shapes, expect, str(where / OPTIMIZER_FILE))
    if state.normalization is not None:
        check_normalization(
            state.normalization, expect.obs_shape, str(where / ARRAYS_FILE), str(where / STATE_FILE)
        )


def read_state(folder: Path, expect: Expected) -> TrainingState:
    """The training state in ``folder``, checked part by part; DamagedCheckpoint otherwise."""
    policy = read_weights(folder / POLICY_FILE, expect)
    optimizer = load_torch_file(folder / OPTIMIZER_FILE, expect.optimizer_limit)
    doc = read_json_object(folder / STATE_FILE, MAX_JSON_BYTES)
    arrays = read_npz(folder / ARRAYS_FILE, expect.array_limit)
    try:
        state = from_data(doc, arrays, policy, optimizer)
    except DamagedCheckpoint:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise DamagedCheckpoint(
            f"{folder / STATE_FILE}: not a training state ({type(e).__name__}: {str(e)[:160]})"
        ) from None
    check_state(state, expect, folder)
    return state


def read_normalization(folder: Path, expect: Expected) -> Normalization | None:
    """Only the normalisation statistics (all that evaluating a policy needs besides it)."""
    doc = read_json_object(folder / STATE_FILE, MAX_JSON_BYTES)
    arrays = read_npz(folder / ARRAYS_FILE, expect.array_limit)
    try:
        n = normalization(doc["normalization"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DamagedCheckpoint(
            f"{folder / STATE_FILE}: no readable normalisation statistics ({str(e)[:160]})"
        ) from None
    if n is not None:
        check_normalization(
            n, expect.obs_shape, str(folder / ARRAYS_FILE), str(folder / STATE_FILE)
        )
    return n
