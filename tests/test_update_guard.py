"""A NaN or infinity in an update's loss or weights undoes that update and stops the run:
the weights are put back, the last good checkpoint stays the newest, none is poisoned."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.env import load_market
from perfmode.errors import PerfmodeError
from perfmode.status.file import read_json_object
from perfmode.training.trainer import build_vec_env, new_model, train
from tests.trainkit import tiny_config


class PoisonSecondRollout(BaseCallback):
    """Makes the second rollout's returns infinite (what prices of 1e308 do), after keeping
    the weights and optimizer state the update starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts = 0
        self.before: dict[str, Any] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if self.rollouts == 2:
            policy = self.model.policy
            self.before = {
                "weights": {k: v.clone() for k, v in policy.state_dict().items()},
                "optimizer": [
                    {k: v.clone() for k, v in s.items()} for s in policy.optimizer.state.values()
                ],
                "n_updates": self.model._n_updates,
            }
            self.model.rollout_buffer.returns[:] = np.inf


@pytest.mark.parametrize("path", ["fast", "sb3"])
def test_a_non_finite_update_is_undone_and_stops_learning(tmp_path: Path, path: str) -> None:
    cfg = tiny_config(tmp_path)
    venv = build_vec_env(cfg, load_market(cfg.env))
    model = new_model(venv, cfg, "cpu")
    if path == "sb3":
        model.target_kl = 1e9  # a setting the fast update leaves to SB3's own train()
    poison = PoisonSecondRollout()
    try:
        with pytest.raises(PerfmodeError, match="NaN or infinit") as caught:
            model.learn(1024, callback=poison)
    finally:
        venv.close()
    assert "\n" not in str(caught.value)
    assert poison.rollouts == 2  # stopped at that update, before another rollout
    after = model.policy.state_dict()
    for name, before in poison.before["weights"].items():
        assert torch.equal(after[name], before), name
    states = list(model.policy.optimizer.state.values())
    assert len(states) == len(poison.before["optimizer"])
    for state, before in zip(states, poison.before["optimizer"], strict=True):
        for k, v in before.items():
            assert torch.equal(state[k], v), k
    assert model._n_updates == poison.before["n_updates"]


def test_training_stops_keeping_the_last_good_checkpoint_and_says_so(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    cfg = tiny_config(tmp_path, training={"total_timesteps": 1024, "checkpoint_freq": 128})
    original = RolloutBuffer.compute_returns_and_advantage
    calls = {"n": 0}

    def poisoned(self: RolloutBuffer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the third rollout: checkpoints at 128 and 256 steps exist
            self.returns[:] = np.inf

    monkeypatch.setattr(RolloutBuffer, "compute_returns_and_advantage", poisoned)
    logger = logging.getLogger("perfmode")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with pytest.raises(PerfmodeError) as caught:
            train(cfg, home)
    finally:
        logger.removeHandler(caplog.handler)
        logger.level, logger.propagate = saved
    message = str(caught.value)
    assert "\n" not in message and "NaN or infinit" in message
    assert "step_0000000256" in message and "perfmode train" in message
    folders = list_checkpoints(home.checkpoints_dir())
    assert [p.name for p in folders] == ["step_0000000256", "step_0000000128"]
    for folder in folders:
        state = open_checkpoint(folder).state  # every check passes: nothing poisoned
        assert state is not None
    assert read_json_object(home.status_file())["state"] == "failed"
    # The next run resumes from that checkpoint (the poison was in this process only).
    monkeypatch.setattr(RolloutBuffer, "compute_returns_and_advantage", original)
    assert train(cfg, home).resumed_from == 256


def test_a_state_holding_nan_is_never_written(tmp_path: Path) -> None:
    from perfmode.checkpoint.folders import save_checkpoint
    from perfmode.checkpoint.state import capture

    cfg = tiny_config(tmp_path)
    venv = build_vec_env(cfg, load_market(cfg.env))
    try:
        model = new_model(venv, cfg, "cpu")
        model.learn(128)
        state = capture(model, venv)
    finally:
        venv.close()
    state.policy["action_net.bias"] = torch.full_like(state.policy["action_net.bias"], np.nan)
    with pytest.raises(PerfmodeError, match=r"action_net\.bias holds NaN or infinity"):
        save_checkpoint(tmp_path / "ckpts", state, {})
    assert list(tmp_path.joinpath("ckpts").iterdir()) == []
