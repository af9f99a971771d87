"""Shared pieces for trainer tests: a tiny config and ways to watch a real trainer."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from perfmode.base.home import Home
from perfmode.config.schema import Config, load_config
from perfmode.training.command import train_command

# Every value a test relies on is spelled out here, not taken from the embedded defaults
# (which may change): the mode profiles in full, nice 0 so that an in-process train()
# leaves the pytest process's priority alone, and no start-up pay-back (at quiet's 0.5 it
# would add ~4 s before every trainer's first step; test_startup_charge.py turns it on).
# One torch thread in both modes: a tiny network gains nothing from two, and two crawl on a
# busy 2-core machine. Tests that need a knob set differently say so.
TINY: dict[str, Any] = {
    "env": {"window": 8, "episode_length": 64, "synthetic_length": 800},
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [8]},
    "training": {
        "total_timesteps": 1024,
        "checkpoint_freq": 256,
        "n_envs": 2,
        "keep_checkpoints": 3,
        "nice": 0,
        "startup_counts": False,
    },
    "modes": {
        "quiet": {
            "batch_size_multiplier": 1.0,
            "epochs_multiplier": 1.0,
            "torch_threads": 1,
            "cpu_share": 0.5,
            "cuda_memory_fraction": 0.5,
        },
        "performance": {
            "batch_size_multiplier": 1.0,
            "epochs_multiplier": 1.0,
            "torch_threads": 1,
            "cpu_share": 1.0,
            "cuda_memory_fraction": None,
        },
    },
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    """TINY with ``sections`` merged in key by key (``modes={"quiet": {"cpu_share": 1}}``)."""
    path.write_text(yaml.safe_dump(_merge(TINY, sections)))
    return path


def tiny_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    return load_config(write_config(tmp_path / "tiny.yaml", **sections))


def start_trainer(home: Home, config: Path, *args: str) -> subprocess.Popen[str]:
    """``perfmode train`` as a process; its output goes to a file (``trainer_output``).

    Not a pipe: nobody reads a pipe while the test runs, and a trainer that logs a checkpoint
    several times a second would fill it and block.
    """
    return start_logged(home, "trainer-", train_command(home.root, *args, config=config))


def start_logged(
    home: Home, prefix: str, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``argv`` as a process, its output in a file beside the home (``trainer_output``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.NamedTemporaryFile(
        "w", dir=home.root.parent, prefix=prefix, suffix=".out", delete=False
    ) as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    proc.output_path = out.name  # type: ignore[attr-defined]
    return proc


def trainer_output(proc: subprocess.Popen[str]) -> str:
    return Path(proc.output_path).read_text(encoding="utf-8")  # type: ignore[attr-defined]


def stop_trainer(proc: subprocess.Popen[str]) -> None:
    """For ``finally``: a trainer a failed test leaves behind must not outlive it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


README = Path(__file__).resolve().parent.parent / "README.md"


def documented_status_keys() -> tuple[set[str], set[str]]:
    """The keys README's `perfmode status --json` example shows: (top level, trainer)."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"### `perfmode status --json`\s+```json\n(.*?)```", text, re.S)
    assert block, "README lost its `perfmode status --json` example"
    example = json.loads(block.group(1).replace("[...]", "[]"))
    return set(example), set(example["trainer"])


def read_status(home: Home, run: str = "default") -> dict[str, Any]:
    try:
        return json.loads(home.status_file(run).read_text())
    except (OSError, ValueError):
        return {}


def log_text(home: Home, run: str = "default") -> str:
    try:
        return home.log_file(run).read_text(encoding="utf-8")
    except OSError:
        return ""


_MODE_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ ⚙️ Performance mode: (\w+)", re.MULTILINE
)


def mode_lines(home: Home, run: str = "default") -> list[tuple[datetime, str]]:
    """The trainer's "Performance mode" log lines: (local time, mode), oldest first."""
    return [
        (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), mode)
        for stamp, mode in _MODE_LINE.findall(log_text(home, run))
    ]


def metrics_rows(home: Home, run: str = "default") -> list[dict[str, str]]:
    try:
        with open(home.metrics_file(run), newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


# --- a model's live state, for comparing runs in this process --------------------------


def live_state(model: Any) -> dict[str, Any]:
    """What a resume must bring back, read from a live model (not from files).

    The RNG streams are compared by their next draws, taken from copies so that taking
    them changes nothing in the run.
    """
    import copy
    import random

    import numpy as np
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    env = model.get_env()
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())
    numpy_copy = np.random.RandomState()
    numpy_copy.set_state(np.random.get_state())
    python_copy = random.Random()
    python_copy.setstate(random.getstate())
    state: dict[str, Any] = {
        "policy": {k: v.detach().clone() for k, v in model.policy.state_dict().items()},
        "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "next python draws": [python_copy.random() for _ in range(3)],
        "next numpy draws": numpy_copy.random_sample(3).tolist(),
        "next torch draws": torch.rand(3, generator=generator).tolist(),
        "next env draws": [copy.deepcopy(g).random(3).tolist() for g in env.get_attr("np_random")],
    }
    if isinstance(env, VecNormalize):
        for name in ("obs_rms", "ret_rms"):
            rms = getattr(env, name)
            state[name] = (np.copy(rms.mean), np.copy(rms.var), rms.count)
    return state


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    import numpy as np
    import torch

    assert a.keys() == b.keys()
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), f"policy weights differ: {name}"
    _assert_same_optimizer(a["optimizer"], b["optimizer"])
    for key in a:
        if key in ("policy", "optimizer"):
            continue
        if key in ("obs_rms", "ret_rms"):
            for part, x, y in zip(("mean", "var", "count"), a[key], b[key], strict=True):
                assert np.array_equal(x, y), f"{key}.{part} differs: {x} vs {y}"
        else:
            assert a[key] == b[key], f"{key} differs: {a[key]} vs {b[key]}"


def _assert_same_optimizer(a: dict[str, Any], b: dict[str, Any]) -> None:
    import torch

    assert a["param_groups"] == b["param_groups"], "optimizer settings differ"
    assert a["state"].keys() == b["state"].keys() and a["state"], "optimizer state differs"
    for param, slots in a["state"].items():
        for slot, value in slots.items():
            other = b["state"][param][slot]
            same = torch.equal(value, other) if torch.is_tensor(value) else value == other
            assert same, f"optimizer state {slot} of parameter {param} differs"


def wrap_policy_method(monkeypatch: Any, name: str, wrapper: Any) -> None:
    """Wrap ``forward`` or ``evaluate_actions`` of whichever policy class the trainer uses.

    SB3's ``ActorCriticPolicy`` and every subclass with its own ``name`` are patched, so a
    test needs no knowledge of the trainer's policy class. ``wrapper(call, *args, **kwargs)``
    runs instead of the method; ``call(*args, **kwargs)`` runs the method. A call that
    reaches a parent's method through ``super()`` is seen once.
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    import perfmode.training.trainer  # noqa: F401  (imports the policy classes it builds)

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    inside = [False]
    for cls in subclasses(ActorCriticPolicy):
        if name not in cls.__dict__:
            continue
        original = cls.__dict__[name]

        def method(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if inside[0]:
                return _original(self, *args, **kwargs)
            inside[0] = True
            try:
                return wrapper(lambda *a, **k: _original(self, *a, **k), *args, **kwargs)
            finally:
                inside[0] = False

        monkeypatch.setattr(cls, name, method)
