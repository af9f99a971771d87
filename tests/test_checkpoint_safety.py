"""Resuming never runs code from a checkpoint; old pickled checkpoints need explicit trust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.checkpoint.legacy import zip_data
from perfmode.config.schema import Config, config_to_mapping, load_config
from perfmode.env import load_market
from perfmode.errors import PerfmodeError
from perfmode.training.trainer import build_vec_env, new_model, train
from tests.ckptkit import Plant, planted_pickle, write_old_checkpoint
from tests.trainkit import write_config


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, Config]:
    path = write_config(
        tmp_path / "tiny.yaml", training={"total_timesteps": 256, "checkpoint_freq": 128}
    )
    return path, load_config(path)


def old_checkpoint(home: Home, config: Config) -> Path:
    """Train 128 steps and save them the way perfmode did before checkpoints were data."""
    market = load_market(config.env)
    venv = build_vec_env(config, market)
    model = new_model(venv, config, "cpu")
    model.learn(128)
    meta = {
        "observation_shape": list(venv.observation_space.shape),
        "config": config_to_mapping(config),
        "data": market.info,
    }
    return write_old_checkpoint(home.checkpoints_dir(), model, venv, meta)


def error_lines(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_a_pickle_planted_in_rng_pkl_never_runs(home: Home, tmp_path: Path, config, cli) -> None:
    path, cfg = config
    marker = tmp_path / "ran"
    folder = old_checkpoint(home, cfg)
    (folder / "rng.pkl").write_bytes(planted_pickle(marker))

    res = cli("train", "--config", str(path))
    assert res.exit_code == 1
    [error] = error_lines(res.output)
    assert folder.name in error and "pickles, which run code" in error
    assert "add --trust-checkpoint to `perfmode train`" in error and "--fresh" in error
    assert not marker.exists()
    assert list_checkpoints(home.checkpoints_dir()) == [folder]  # nothing written

    # The plant is real: trusting the checkpoint runs it (that is what the flag is for).
    cli("train", "--config", str(path), "--trust-checkpoint")
    assert marker.exists()


def test_an_old_checkpoint_resumes_when_trusted_and_is_followed_by_data_only_ones(
    home: Home, config
) -> None:
    _, cfg = config
    folder = old_checkpoint(home, cfg)
    with pytest.raises(PerfmodeError, match="--trust-checkpoint"):
        train(cfg, home)
    result = train(cfg, home, trust_checkpoint=True)
    assert result.resumed_from == 128 and result.timesteps == 256
    newest = list_checkpoints(home.checkpoints_dir())[0]
    assert newest.name == "step_0000000256" and (newest / "policy.pth").exists()
    assert not list(newest.glob("*.pkl")) and not (newest / "model.zip").exists()
    # Trained on from the old run's counters, not from scratch.
    saved_updates = zip_data(folder / "model.zip")["_n_updates"]
    assert open_checkpoint(newest).state.n_updates == 2 * saved_updates > 0


@pytest.mark.parametrize("part", ["policy.pth", "policy.optimizer.pth", "state.npz"])
def test_a_pickle_in_a_data_file_is_refused_and_the_checkpoint_before_is_used(
    home: Home, tmp_path: Path, config, part: str
) -> None:
    _, cfg = config
    train(cfg, home)
    newest, previous = list_checkpoints(home.checkpoints_dir())[:2]
    marker = tmp_path / "ran"
    if part == "state.npz":
        with np.load(newest / part) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["obs_mean"] = np.array([Plant(marker)], dtype=object)
        np.savez(newest / part, **arrays)
    else:
        torch.save({"weight": Plant(marker)}, newest / part)
    result = train(cfg.with_overrides(total_timesteps=384), home)
    assert result.resumed_from == int(previous.name.split("_")[1])
    assert not marker.exists()
