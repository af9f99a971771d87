"""What a run leaves behind stays tidy: metrics without repeats, --fresh archives everything,
half-written checkpoints are cleaned up, and nothing is written outside the home."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from perfmode.config.schema import Config, load_config
from perfmode.training.trainer import train
from tests.trainkit import metrics_rows, write_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(
        write_config(
            tmp_path / "tiny.yaml", training={"total_timesteps": 512, "checkpoint_freq": 256}
        )
    )


def steps(home: Home) -> list[int]:
    return [int(r["timesteps"]) for r in metrics_rows(home)]


def test_no_sb3_folder_is_left_in_the_temp_folder(
    home: Home, config, tmp_path, monkeypatch
) -> None:
    from stable_baselines3 import PPO

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)

    def sb3_folders() -> list[Path]:
        return list(temp.glob("SB3-*"))

    # SB3's default logger makes an empty SB3-<time> folder there at every learn().
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1).learn(64)
    assert len(sb3_folders()) == 1
    shutil.rmtree(sb3_folders()[0])

    train(config.with_overrides(total_timesteps=128), home)  # a new run
    train(config.with_overrides(total_timesteps=256), home)  # and a resumed one
    assert sb3_folders() == []


def test_metrics_of_a_resumed_run_continue_from_its_checkpoint(home: Home, config) -> None:
    train(config, home)
    assert steps(home) == [128, 256, 384, 512]
    # As if killed after the 512-step rows were written but before its checkpoint was,
    # in the middle of appending a row.
    shutil.rmtree(home.checkpoints_dir() / "step_0000000512")
    with open(home.metrics_file(), "a") as f:
        f.write("2026-01-01T00:00:00+00:00,640,qui")

    result = train(config.with_overrides(total_timesteps=768), home)
    assert result.resumed_from == 256
    assert steps(home) == [128, 256, 384, 512, 640, 768]
    [dropped] = (home.run_dir() / "archive").glob("metrics-dropped-*.csv")
    lines = dropped.read_text().splitlines()
    assert lines[0].startswith("time,timesteps,")
    assert [line.split(",")[1] for line in lines[1:]] == ["384", "512", "640"]


def test_a_checkpoint_write_cut_short_by_a_kill_is_removed_at_the_next_start(
    home: Home, config
) -> None:
    train(config.with_overrides(total_timesteps=256), home)
    half = home.checkpoints_dir() / ".step_0000000512.4242.tmp"
    half.mkdir()
    (half / "policy.pth").write_bytes(b"\x00" * 100)
    result = train(config, home)
    assert result.resumed_from == 256
    assert not half.exists()
    assert [p.name for p in home.checkpoints_dir().iterdir()] == [
        p.name for p in list_checkpoints(home.checkpoints_dir())
    ]


def test_fresh_archives_checkpoints_metrics_and_log_together(home: Home, tmp_path, cli) -> None:
    path = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 256})
    assert cli("train", "--config", str(path)).exit_code == 0
    before = home.log_file().read_text()
    res = cli("train", "--config", str(path), "--fresh")
    assert res.exit_code == 0, res.output

    [archived] = (home.run_dir() / "archive").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == ["checkpoints", "metrics.csv", "train.log"]
    assert (archived / "train.log").read_text() == before
    with open(archived / "metrics.csv", newline="") as f:
        assert [int(r["timesteps"]) for r in csv.DictReader(f)] == [128, 256]
    assert [p.name for p in list_checkpoints(archived / "checkpoints")] == ["step_0000000256"]
    # The new run's files start from zero, with no trace of the old run's steps.
    assert steps(home) == [128, 256]
    log = home.log_file().read_text()
    assert "Resuming" not in log and "moved the old checkpoints, metrics.csv, train.log" in log
    assert [p.name for p in list_checkpoints(home.checkpoints_dir())] == ["step_0000000256"]
