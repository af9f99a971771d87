"""Resume, compared through the model's live state: what was saved is what comes back.

Format-free: the state is read from the live model as the saving run's ``learn()`` ends and
as the resumed run's ``learn()`` starts (test_trainer.py compares an unbroken run with a
stopped and resumed one). Both runs happen in this process with one torch thread.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from perfmode.errors import UsageError
from perfmode.settings.store import SettingsStore
from perfmode.training.trainer import train
from tests.trainkit import assert_same_state, metrics_rows, tiny_config, wrap_policy_method


def new_home(tmp_path: Path, name: str) -> Home:
    home = Home(tmp_path / name)
    home.root.mkdir()
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    return home


def test_a_resume_brings_back_the_state_that_was_saved(
    tmp_path: Path, learned, monkeypatch
) -> None:
    home = new_home(tmp_path, "h")

    # Neither SB3 nor the env draws from Python's `random` (a user's code may): draw from it
    # during the first run, so that a stream left at its seed cannot pass for a restored one.
    def forward(call: Any, *args: Any, **kwargs: Any) -> Any:
        random.random()
        return call(*args, **kwargs)

    with monkeypatch.context() as patch:
        wrap_policy_method(patch, "forward", forward)
        train(tiny_config(tmp_path, training={"total_timesteps": 256}), home)
    saved = learned["end"][-1]
    result = train(tiny_config(tmp_path, training={"total_timesteps": 512}), home)
    assert result.resumed_from == 256
    resumed = learned["start"][-1]
    assert resumed["num_timesteps"] == 256 and resumed["n_updates"] > 0
    # Weights, optimizer moments, VecNormalize statistics, counters, and where each RNG
    # stream (python, numpy, torch, every env's) goes next.
    assert_same_state(saved, resumed)


def test_resume_may_change_the_rollout_but_not_the_window_or_the_network(
    home: Home, tmp_path: Path
) -> None:
    train(tiny_config(tmp_path, training={"total_timesteps": 256}), home)
    more_envs = tiny_config(tmp_path, training={"total_timesteps": 512, "n_envs": 4})
    assert train(more_envs, home).resumed_from == 256
    other_rollout = tiny_config(
        tmp_path,
        ppo={"n_steps": 32, "batch_size": 16, "n_epochs": 3},
        training={"total_timesteps": 768},
    )
    assert train(other_rollout, home).resumed_from == 512
    assert [r["batch_size"] for r in metrics_rows(home)][-1] == "16"
    saved = [p.name for p in list_checkpoints(home.checkpoints_dir())]

    other_window = tiny_config(tmp_path, env={"window": 16}, training={"total_timesteps": 1024})
    with pytest.raises(UsageError, match=r"env\.window.*--fresh"):
        train(other_window, home)
    other_net = tiny_config(tmp_path, ppo={"net_arch": [16]}, training={"total_timesteps": 1024})
    with pytest.raises(UsageError, match=r"ppo\.net_arch \[8\].*\[16\].*--fresh"):
        train(other_net, home)
    # Refused before anything was written.
    assert [p.name for p in list_checkpoints(home.checkpoints_dir())] == saved
