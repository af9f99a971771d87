"""The trainer in-process: determinism, resume, damaged checkpoints, OOM fallback."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from perfmode.checkpoint_io import read_weights
from perfmode.checkpoints import list_checkpoints, open_checkpoint
from perfmode.config import Config, load_config
from perfmode.env import load_market
from perfmode.errors import PerfmodeError, UsageError
from perfmode.fastppo import LeanPPO
from perfmode.home import Home
from perfmode.session import _SessionCallback
from perfmode.settings import SettingsStore
from perfmode.trainer import build_vec_env, train
from tests.trainkit import metrics_rows, read_status, write_config


@pytest.fixture
def train_log(caplog):
    """The trainer's log lines, INFO included, whatever an earlier CLI test did to logging."""
    logger = logging.getLogger("perfmode")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.level, logger.propagate = saved


def tiny(tmp_path, **sections):
    return load_config(write_config(tmp_path / "tiny.yaml", **sections))


def test_quiet_run_has_the_same_weights_as_plain_sb3(home: Home, tmp_path) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 512, "checkpoint_freq": 128})
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    result = train(config, home)
    ours = read_weights(result.checkpoint / "policy.pth")

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
    assert open_checkpoint(result.checkpoint).timesteps == plain.num_timesteps == 512
    for (name, a), b in zip(ours.items(), plain.policy.state_dict().values(), strict=True):
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
    # Data only: nothing in a checkpoint is a pickle.
    assert {p.name for p in result.checkpoint.iterdir()} == {
        "policy.pth",
        "policy.optimizer.pth",
        "state.json",
        "state.npz",
        "meta.json",
    }
    assert [int(r["timesteps"]) for r in metrics_rows(home)] == list(range(128, 1025, 128))
    assert read_status(home)["state"] == "finished"
    # Training on: the earlier final checkpoint is kept beside the newest ones.
    train(config.with_overrides(total_timesteps=1536), home)
    names = [p.name for p in list_checkpoints(home.checkpoints_dir())]
    assert "step_0000001024" in names and names[0] == "step_0000001536"


def _stop_at(monkeypatch, timesteps: int) -> None:
    """Ctrl-C as the rollout reaches ``timesteps``: mid-rollout, the worst place to stop."""
    original = _SessionCallback._on_step

    def on_step(self):
        if self.num_timesteps >= timesteps:
            self.session.stop.requested = True
        return original(self)

    monkeypatch.setattr(_SessionCallback, "_on_step", on_step)


def _assert_same_state(a, b) -> None:
    assert (a.num_timesteps, a.n_updates) == (b.num_timesteps, b.n_updates)
    for name, t in a.policy.items():
        assert torch.equal(t, b.policy[name]), name
    for k, s in a.optimizer["state"].items():
        for name, t in s.items():
            assert torch.equal(t, b.optimizer["state"][k][name]), (k, name)
    assert np.array_equal(a.torch_rng, b.torch_rng)
    assert a.python_rng == b.python_rng
    assert np.array_equal(a.numpy_rng["state"]["key"], b.numpy_rng["state"]["key"])
    assert a.envs.generators == b.envs.generators and a.envs.episodes == b.envs.episodes
    assert np.array_equal(a.envs.last_obs, b.envs.last_obs)
    for field in ("obs_mean", "obs_var", "ret_mean", "ret_var", "returns"):
        assert np.array_equal(getattr(a.normalization, field), getattr(b.normalization, field))
    assert a.normalization.obs_count == b.normalization.obs_count
    # Finished episodes' rewards and lengths ("t" is wall-clock time).
    assert [(e["r"], e["l"]) for e in a.episode_infos] == [
        (e["r"], e["l"]) for e in b.episode_infos
    ]


def test_stopped_and_resumed_run_ends_where_one_straight_through_does(
    tmp_path, monkeypatch, train_log
) -> None:
    config = tiny(tmp_path, training={"total_timesteps": 768, "checkpoint_freq": 256})
    straight, stopped = Home(tmp_path / "straight"), Home(tmp_path / "stopped")
    for home in (straight, stopped):
        home.root.mkdir()
        SettingsStore(home.settings).set_mode("quiet", changed_by="cli")  # one torch thread
    final = train(config, straight)

    with monkeypatch.context() as m:
        _stop_at(m, 300)  # inside the rollout from 256 to 384, after a checkpoint at 256
        first = train(config, stopped)
    assert first.stopped_early and first.timesteps == 256
    with monkeypatch.context() as m:
        _stop_at(m, 420)  # inside 384..512, where no checkpoint was written
        second = train(config, stopped)
    assert second.stopped_early and second.timesteps == second.resumed_from + 128 == 384
    resumed = train(config, stopped)
    assert resumed.resumed_from == 384 and resumed.timesteps == 768

    a = open_checkpoint(final.checkpoint).state
    b = open_checkpoint(resumed.checkpoint).state
    _assert_same_state(a, b)
    # The metrics rows of both runs name the same updates, each once, with the same rewards.
    rows = [(r["timesteps"], r["ep_rew_mean"]) for r in metrics_rows(straight)]
    assert rows == [(r["timesteps"], r["ep_rew_mean"]) for r in metrics_rows(stopped)]
    # A stop right after a checkpoint keeps that checkpoint instead of writing it again.
    assert train_log.text.count(f"Checkpoint at 256 steps: {stopped.checkpoints_dir()}") == 1


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory) -> tuple[Home, Config]:
    """A run with checkpoints at 256 and 512 steps, to copy and damage."""
    root = tmp_path_factory.mktemp("two")
    config = load_config(
        write_config(root / "tiny.yaml", training={"total_timesteps": 512, "checkpoint_freq": 256})
    )
    home = Home(root / "home")
    home.root.mkdir()
    train(config, home)
    return home, config


def _rewrite_npz(path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, **changes})


def _rewrite_json(path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


DAMAGE = {
    "policy.pth truncated": lambda c: (c / "policy.pth").write_bytes(
        (c / "policy.pth").read_bytes()[:200]
    ),
    "policy.pth empty": lambda c: (c / "policy.pth").write_bytes(b""),
    "optimizer state missing": lambda c: (c / "policy.optimizer.pth").unlink(),
    "state.json empty": lambda c: (c / "state.json").write_text(""),
    "state.json truncated": lambda c: (c / "state.json").write_text(
        (c / "state.json").read_text()[:100]
    ),
    "state.json without counters": lambda c: (c / "state.json").write_text('{"format": 1}'),
    "state.npz truncated": lambda c: (c / "state.npz").write_bytes(
        (c / "state.npz").read_bytes()[:300]
    ),
    "state.npz empty": lambda c: (c / "state.npz").write_bytes(b""),
    "torch RNG state cut short": lambda c: _rewrite_npz(
        c / "state.npz", torch_rng=np.zeros(10, np.uint8)
    ),
    "normalisation stats NaN": lambda c: _rewrite_npz(
        c / "state.npz", obs_var=np.full_like(np.load(c / "state.npz")["obs_var"], np.nan)
    ),
    "env generator unknown": lambda c: _rewrite_json(
        c / "state.json",
        lambda d: d["envs"]["generators"][0].update(bit_generator="os.system"),
    ),
    "env episode off the data": lambda c: _rewrite_json(
        c / "state.json", lambda d: d["envs"]["episodes"][0].update(t=10**9)
    ),
    "meta.json is []": lambda c: (c / "meta.json").write_text("[]"),
    "meta.json timesteps abc": lambda c: _rewrite_json(
        c / "meta.json", lambda d: d.update(timesteps="abc")
    ),
    "meta.json missing": lambda c: (c / "meta.json").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_part_falls_back_to_the_checkpoint_before(
    two_checkpoints, tmp_path, damage: str, train_log
) -> None:
    pristine, config = two_checkpoints
    home = Home(tmp_path / "home")
    shutil.copytree(pristine.root, home.root)
    newest = home.checkpoints_dir() / "step_0000000512"
    DAMAGE[damage](newest)
    result = train(config.with_overrides(total_timesteps=256), home)
    assert result.resumed_from == 256
    assert f"checkpoint {newest} is " in train_log.text
    assert "falling back to the one before" in train_log.text


def test_after_a_fallback_training_goes_on_from_the_checkpoint_before(
    two_checkpoints, tmp_path
) -> None:
    pristine, config = two_checkpoints
    home = Home(tmp_path / "home")
    shutil.copytree(pristine.root, home.root)
    DAMAGE["policy.pth truncated"](home.checkpoints_dir() / "step_0000000512")
    result = train(config.with_overrides(total_timesteps=768), home)
    assert result.resumed_from == 256 and result.timesteps == 768
    assert open_checkpoint(result.checkpoint).state.num_timesteps == 768


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
