"""What one trial is: its values, its config file, its run folder, who runs it.

A trial's config is the sweep's config with the sampled values set, the trial's length and
a validation score every ``timesteps_per_trial / reports`` steps; it is written to the
trial's run folder as ``trial.yaml``, so ``perfmode train --run RUN --config trial.yaml``
is exactly what the trial ran.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from pathlib import Path
from typing import Any

import yaml

from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.home import Home
from perfmode.config.schema import Config, config_to_mapping
from perfmode.config.sweep import SweepConfig, apply_values, decode_choice, encode_choice

TRIAL_CONFIG = "trial.yaml"
SEED_KEY = "training.seed"


def run_name(sweep: str, number: int) -> str:
    return f"sweep-{sweep}-{number}"


def suggest(trial: Any, sweep: SweepConfig) -> dict[str, Any]:
    """The trial's values from the space (an enqueued trial gets the values it was given)."""
    values: dict[str, Any] = {}
    for key, spec in sweep.effective_space().items():
        kind, arg = next(iter(spec.items()))
        if kind == "log_uniform":
            values[key] = trial.suggest_float(key, float(arg[0]), float(arg[1]), log=True)
        elif kind == "uniform":
            values[key] = trial.suggest_float(key, float(arg[0]), float(arg[1]))
        elif kind == "int":
            values[key] = trial.suggest_int(key, int(arg[0]), int(arg[1]))
        else:
            picked = trial.suggest_categorical(key, [encode_choice(c) for c in arg])
            values[key] = decode_choice(picked, arg)
    seeds = sweep.seed_list
    if seeds is not None and SEED_KEY not in values:
        values[SEED_KEY] = trial.suggest_categorical(SEED_KEY, seeds)
    return values


def trial_config(base: Config, values: dict[str, Any], timesteps: int, data: str | None) -> Config:
    sweep = base.sweep
    config = apply_values(base, values)
    every = max(1, math.ceil(timesteps / sweep.reports))
    training = dataclasses.replace(config.training, total_timesteps=timesteps, validate_every=every)
    env = sweep.trial_env(config.env)
    if data is not None:
        env = env.replace(data=data)
    if not env.is_synthetic:
        # The trial's file must name the same prices from wherever it is run again.
        env = env.replace(data=str(Path(env.data).expanduser().resolve()))
    return dataclasses.replace(config, env=env, training=training, sweep=SweepConfig())


def write_trial_config(path: Path, config: Config, header: str) -> None:
    mapping = config_to_mapping(config)
    mapping.pop("sweep")  # the trial is a plain run: its file says only what it trains with
    text = "".join(f"# {line}\n" for line in header.splitlines())
    text += yaml.safe_dump(mapping, sort_keys=False)
    atomic_write_bytes(path, text.encode("utf-8"))


def identity(home: Home) -> dict[str, Any]:
    """Who runs a trial: recorded in its user attributes, shown by --show."""
    return {
        "host": socket.gethostname(),
        "home": str(home.root),
        "sweep_pid": os.getpid(),
        "sweep_started": _started(os.getpid()),
    }


def _started(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def owner_alive(attrs: dict[str, Any]) -> bool:
    """Whether the sweep process that runs a trial is still running (same pid and start)."""
    pid, started = attrs.get("sweep_pid"), attrs.get("sweep_started")
    if not isinstance(pid, int):
        return False
    now = _started(pid)
    return now is not None and (started is None or abs(now - float(started)) < 1.0)


def on_this_machine(attrs: dict[str, Any]) -> bool:
    """Whether a trial runs (or ran) on this machine, as :func:`identity` recorded it."""
    return attrs.get("host") == socket.gethostname()


def is_ours(attrs: dict[str, Any], home: Home) -> bool:
    return on_this_machine(attrs) and attrs.get("home") == str(home.root)
