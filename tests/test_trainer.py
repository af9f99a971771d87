"""The trainer in-process: determinism, resume, damaged checkpoints, OOM fallback."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from stable_baselines3 import PPO

from perfmode.checkpoints import latest_checkpoint, list_checkpoints
from perfmode.config import load_config
from perfmode.env import load_market
from perfmode.errors import PerfmodeError, UsageError
from perfmode.fastppo import LeanPPO
from perfmode.home import Home
from perfmode.settings import SettingsStore
from perfmode.trainer import build_vec_env, load_model, train
from tests.trainkit import metrics_rows, read_status, write_config


def tiny(tmp_path, **sections):
    return load_config(write_config(tmp_path / "tiny.yaml", **sections))


def test_quiet_run_has_the_same_weights_as_plain_sb3(home: Home, tmp_path) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 512, "checkpoint_freq": 128})
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    result = train(config, home)
    ours = PPO.load(result.checkpoint / "model.zip")

    torch.set_num_threads(1)  # quiet's threads
    market = load_market(config.env)
    p = config.ppo
    plain = PPO(
        "MlpPolicy",
        build_vec_env(config, market),
        seed=config.training.seed,
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        learning_rate=p.learning_rate,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=p.clip_range,
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        policy_kwargs={"net_arch": p.net_arch},
    )
    plain.learn(512)
    assert ours.num_timesteps == plain.num_timesteps == 512
    for (name, a), b in zip(
        ours.policy.state_dict().items(), plain.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_checkpoints_every_freq_keep_the_last_n_and_the_final(home: Home, tmp_path) -> None:
    config = tiny(
        tmp_path, training={"total_timesteps": 1024, "checkpoint_freq": 128, "keep_checkpoints": 2}
    )
    result = train(config, home)
    names = [p.name for p in list_checkpoints(home.checkpoints_dir())]
    assert names == ["step_0000001024", "step_0000000896"]
    meta = json.loads((result.checkpoint / "meta.json").read_text())
    assert meta["final"] is True and meta["timesteps"] == 1024
    assert meta["config"]["ppo"]["net_arch"] == [8]
    assert {"model.zip", "vecnormalize.pkl", "rng.pkl", "meta.json"} <= {
        p.name for p in result.checkpoint.iterdir()
    }
    assert [int(r["timesteps"]) for r in metrics_rows(home)] == list(range(128, 1025, 128))
    assert read_status(home)["state"] == "finished"
    # Training on: the earlier final checkpoint is kept beside the newest ones.
    train(config.with_overrides(total_timesteps=1536), home)
    names = [p.name for p in list_checkpoints(home.checkpoints_dir())]
    assert "step_0000001024" in names and names[0] == "step_0000001536"


def test_resume_restores_counter_optimizer_and_rng(home: Home, tmp_path) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 256})
    result = train(config, home)
    ckpt = latest_checkpoint(home.checkpoints_dir())
    assert ckpt is not None and ckpt.path == result.checkpoint
    saved = PPO.load(ckpt.model)
    model = load_model(ckpt, build_vec_env(config, load_market(config.env), ckpt), config, "cpu")
    assert model.num_timesteps == 256
    assert model._n_updates == saved._n_updates > 0
    opt, saved_opt = model.policy.optimizer.state_dict(), saved.policy.optimizer.state_dict()
    assert opt["state"] and all(
        torch.equal(opt["state"][k]["exp_avg"], saved_opt["state"][k]["exp_avg"])
        for k in opt["state"]
    )
    rng = pickle.loads((ckpt.path / "rng.pkl").read_bytes())
    assert torch.equal(torch.get_rng_state(), rng["torch"])


def test_truncated_newest_checkpoint_falls_back_to_the_one_before(
    home: Home, tmp_path, caplog
) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 512, "checkpoint_freq": 256})
    train(config, home)
    newest, previous = list_checkpoints(home.checkpoints_dir())[:2]
    data = (newest / "model.zip").read_bytes()
    (newest / "model.zip").write_bytes(data[: len(data) // 2])
    result = train(config.with_overrides(total_timesteps=768), home)
    assert result.resumed_from == int(previous.name.split("_")[1]) == 256
    assert "damaged" in caplog.text and "falling back" in caplog.text


def test_resume_with_another_n_envs_works_and_another_window_is_refused(
    home: Home, tmp_path
) -> None:
    train(tiny(tmp_path, training={"total_timesteps": 256}), home)
    more_envs = tiny(tmp_path, training={"total_timesteps": 512, "n_envs": 4})
    assert train(more_envs, home).resumed_from == 256
    other_window = tiny(tmp_path, env={"window": 16}, training={"total_timesteps": 1024})
    with pytest.raises(UsageError, match=r"env\.window"):
        train(other_window, home)
    # --fresh starts over and keeps the old checkpoints aside.
    result = train(other_window.with_overrides(total_timesteps=256), home, fresh=True)
    assert result.resumed_from is None
    assert list((home.run_dir() / "archive").iterdir())


def _oom_above(limit: int):
    original = LeanPPO.train

    def train_or_oom(self):
        if self.batch_size > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return original(self)

    return train_or_oom


def test_oom_halves_the_batch_and_training_goes_on(home: Home, tmp_path, monkeypatch) -> None:
    config = tiny(
        tmp_path,
        ppo={"batch_size": 16},
        training={"total_timesteps": 512},
        modes={"performance": {"batch_size_multiplier": 2.0}},
    )
    SettingsStore(home.settings).set_mode("performance", changed_by="cli")  # batch 32
    monkeypatch.setattr(LeanPPO, "train", _oom_above(16))
    result = train(config, home)
    assert result.timesteps == 512
    status = read_status(home)
    assert status["batch_cap"] == 16 and status["batch_size"] == 16
    assert status["oom_events"][0]["failed_batch"] == 32
    assert {r["batch_size"] for r in metrics_rows(home)} == {"16"}


def test_oom_at_the_base_batch_saves_and_says_what_to_change(
    home: Home, tmp_path, monkeypatch
) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 512})
    monkeypatch.setattr(LeanPPO, "train", _oom_above(1))
    with pytest.raises(PerfmodeError, match=r"Lower ppo\.batch_size"):
        train(config, home)
    assert list_checkpoints(home.checkpoints_dir())
    assert read_status(home)["state"] == "failed"


def test_bad_config_fails_before_anything_starts(home: Home, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  checkpoint_frequency: 5\n")
    with pytest.raises(
        UsageError, match=r"bad\.yaml:2: unknown key training\.checkpoint_frequency"
    ):
        load_config(path)
    path.write_text("modes:\n  quiet:\n    cpu_share: 0\n")
    with pytest.raises(
        UsageError, match=r"modes.quiet.cpu_share is 0.0; it must be from 0.05 to 1"
    ):
        load_config(path)
    path.write_text("ppo: [1, 2\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config(path)
    assert not home.runs_dir.exists()
