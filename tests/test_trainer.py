"""The trainer in-process: determinism, resume, damaged checkpoints, the live mode, Ctrl-C,
CUDA OOM.

In-process trainers use ``training.nice: 0`` (``trainkit.TINY``); the conftest guard fails
a test that lowers the pytest process's priority.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.config.schema import Config, load_config
from perfmode.errors import PerfmodeError, UsageError
from perfmode.settings.store import SettingsStore
from perfmode.training.callbacks import GoverningCallback
from perfmode.training.stop import SAME_STOP_S
from perfmode.training.trainer import train
from tests.conftest import wait_for
from tests.trainkit import (
    metrics_rows,
    read_status,
    tiny_config,
    wrap_policy_method,
    write_config,
)

FAST_QUIET = {"quiet": {"cpu_share": 1.0}}  # no duty cycle where the test is not about it


@pytest.fixture
def train_log(perfmode_log: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """perfmode's log records (``perfmode_log`` in tests/conftest.py)."""
    return perfmode_log


def tiny(tmp_path, **sections):
    return load_config(write_config(tmp_path / "tiny.yaml", **sections))


# The quiet run vs plain SB3 PPO.learn, bit for bit: tests/test_fast_path.py.


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
    original = GoverningCallback._on_step

    def on_step(self):
        if self.num_timesteps >= timesteps:
            self.stop.requested = True
        return original(self)

    monkeypatch.setattr(GoverningCallback, "_on_step", on_step)


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


def test_torch_threads_follow_the_mode(home: Home, tmp_path: Path, monkeypatch) -> None:
    """Read back from torch while the policy runs: quiet's 1 thread, then performance's 2."""
    config = tiny_config(
        tmp_path,
        training={"total_timesteps": 1_000_000, "poll_interval": 0.05},
        modes={"quiet": {"cpu_share": 1.0}, "performance": {"torch_threads": 2}},
    )
    store = SettingsStore(home.settings)
    store.set_mode("quiet", changed_by="cli")
    torch.set_num_threads(3)  # neither mode's count: a mode that is not applied shows
    seen: list[tuple[bool, int]] = []  # (switch written yet, torch threads) per forward pass

    def forward(call: Any, *args: Any, **kwargs: Any) -> Any:
        switched = len(seen) > 40
        seen.append((switched, torch.get_num_threads()))
        if len(seen) == 41:
            store.set_mode("performance", changed_by="cli")
        seen_enough = [t for s, t in seen[-20:] if s] == [2] * 20 or len(seen) == 5000
        if seen_enough:
            signal.raise_signal(signal.SIGINT)  # stop at the next safe point
        return call(*args, **kwargs)

    wrap_policy_method(monkeypatch, "forward", forward)
    assert train(config, home).stopped_early
    before = {threads for switched, threads in seen if not switched}
    after = [threads for switched, threads in seen if switched]
    assert before == {1}
    assert set(after[after.index(2) :]) == {2}, after


def test_ctrl_c_stops_at_the_next_safe_point_and_saves(
    home: Home, tmp_path: Path, monkeypatch, learned
) -> None:
    config = tiny_config(
        tmp_path, training={"total_timesteps": 100_000, "checkpoint_freq": 1000}, modes=FAST_QUIET
    )
    calls = 0

    def evaluate_actions(call: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 12:  # half-way through the second update (8 minibatches each)
            signal.raise_signal(signal.SIGINT)
        return call(*args, **kwargs)

    wrap_policy_method(monkeypatch, "evaluate_actions", evaluate_actions)
    result = train(config, home)
    # The update in progress was finished, the rollout after it not trained on.
    assert calls == 16
    assert (result.stopped_early, result.timesteps) == (True, 2 * 128)
    assert [p.name for p in list_checkpoints(home.checkpoints_dir())] == ["step_0000000256"]
    assert read_status(home)["state"] == "stopped"
    assert learned["end"][-1]["n_updates"] == 2 * 2  # SB3 counts epochs


def test_a_second_ctrl_c_quits_at_once(home: Home, tmp_path: Path, monkeypatch, caplog) -> None:
    """The first Ctrl-C waits for the end of the update; the second does not."""
    config = tiny_config(
        tmp_path,
        ppo={"batch_size": 8, "n_epochs": 20},  # 320 minibatches in an update
        training={"total_timesteps": 100_000, "checkpoint_freq": 128},
        modes=FAST_QUIET,
    )
    caplog.set_level(logging.INFO, logger="perfmode")
    calls = 0

    def evaluate_actions(call: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:  # the first update, two minibatches in
            signal.raise_signal(signal.SIGINT)
            wait_for("the first Ctrl-C to be heard", lambda: "SIGINT: stopping" in caplog.text, 30)
            time.sleep(SAME_STOP_S + 0.2)  # a person's second Ctrl-C, not a copy of the first
            signal.raise_signal(signal.SIGINT)
            wait_for("the second Ctrl-C to stop the process", lambda: False, timeout=30)
        return call(*args, **kwargs)

    wrap_policy_method(monkeypatch, "evaluate_actions", evaluate_actions)
    with pytest.raises(KeyboardInterrupt):
        train(config, home)
    assert calls == 3
    assert list_checkpoints(home.checkpoints_dir()) == []  # no save on the way out


# --- CUDA out of memory (injected: a CPU run, the error raised where CUDA would) ----------


def oom_mid_update(monkeypatch, above: int, after: int = 2) -> None:
    """``torch.OutOfMemoryError`` on every minibatch of more than ``above`` rows once
    ``after`` minibatches of the update have been trained on."""
    big = 0

    def evaluate_actions(call: Any, obs: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal big
        if len(obs) > above:
            big += 1
            if big > after:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return call(obs, *args, **kwargs)

    wrap_policy_method(monkeypatch, "evaluate_actions", evaluate_actions)


def test_oom_mid_update_halves_the_batch_and_training_goes_on(
    home: Home, tmp_path: Path, monkeypatch
) -> None:
    config = tiny_config(
        tmp_path,
        ppo={"batch_size": 16},
        training={"total_timesteps": 512},
        modes={**FAST_QUIET, "performance": {"batch_size_multiplier": 2.0}},
    )
    SettingsStore(home.settings).set_mode("performance", changed_by="cli")  # batch 16 × 2
    oom_mid_update(monkeypatch, above=16)
    result = train(config, home)
    assert result.timesteps == 512 and not result.stopped_early
    status = read_status(home)
    assert status["state"] == "finished"
    assert status["batch_cap"] == 16 and status["batch_size"] == 16
    (event,) = status["oom_events"]
    assert (event["failed_batch"], event["new_batch"]) == (32, 16)
    assert {r["batch_size"] for r in metrics_rows(home)} == {"16"}


def test_oom_at_the_base_batch_saves_and_says_what_to_change(
    home: Home, tmp_path: Path, monkeypatch
) -> None:
    config = tiny_config(tmp_path, training={"total_timesteps": 512}, modes=FAST_QUIET)
    oom_mid_update(monkeypatch, above=1)
    with pytest.raises(PerfmodeError, match=r"Lower ppo\.batch_size") as err:
        train(config, home)
    (saved,) = list_checkpoints(home.checkpoints_dir())
    assert str(saved) in str(err.value)
    assert read_status(home)["state"] == "failed"


def test_oom_at_the_base_batch_exits_1_with_the_error_last(
    cli, home: Home, tmp_path: Path, monkeypatch
) -> None:
    config = write_config(tmp_path / "c.yaml", training={"total_timesteps": 512}, modes=FAST_QUIET)
    oom_mid_update(monkeypatch, above=1)
    result = cli("train", "--config", str(config))
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: CUDA ran out of memory even at the base batch size 32")
    assert "Traceback" not in result.stderr


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
