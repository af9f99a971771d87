"""Checkpoints at rollout boundaries are written in a thread while training goes on.

What a foreground write promised must still hold: the checkpoint is the state of its
boundary (not of a later update), whole or not at all when the process is killed mid-write,
finished before the process exits, the final one written after it at a stop, and a failed
write is one clear line with the checkpoint before it intact. A slow disk is simulated by
delaying ``write_state`` in the writer's thread, so training runs well past the boundary
before the files are written.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import perfmode.checkpoint.folders as folders
from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.config.schema import load_config
from perfmode.errors import PerfmodeError
from perfmode.training.callbacks import CheckpointingCallback
from perfmode.training.trainer import train
from tests.conftest import WAIT_S
from tests.trainkit import read_status, write_config

# A child that trains with a slow disk: each background write sleeps (or, from 512 steps
# on, never returns) after its files are written and before the folder is renamed.
CHILD = """
import sys, threading, time
from pathlib import Path
import perfmode.checkpoint.folders as folders
from perfmode.base.home import Home
from perfmode.config.schema import load_config
from perfmode.training.trainer import train

how, config, home = sys.argv[1:4]
real = folders.write_state

def slow(folder, state):
    written = real(folder, state)
    if threading.current_thread() is not threading.main_thread():
        print("written", state.num_timesteps, flush=True)
        if how == "hang" and state.num_timesteps >= 512:
            threading.Event().wait()
        time.sleep(1.5)
    return written

folders.write_state = slow
train(load_config(config), Home(Path(home)))
print("exited", flush=True)
"""


def _slow_background_writes(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = folders.write_state

    def slow(folder: Path, state):  # type: ignore[no-untyped-def]
        if threading.current_thread() is not threading.main_thread():
            time.sleep(seconds)  # training meanwhile updates the live tensors
        return real(folder, state)

    monkeypatch.setattr(folders, "write_state", slow)


def _states(home: Home) -> dict[int, object]:
    return {
        int(p.name[5:]): open_checkpoint(p).state for p in list_checkpoints(home.checkpoints_dir())
    }


def test_background_checkpoints_hold_the_state_of_their_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", training={"keep_checkpoints": 10}))
    foreground = Home(tmp_path / "fg")
    with monkeypatch.context() as m:
        # As before the writer: each boundary's checkpoint written before training goes on.
        m.setattr(
            CheckpointingCallback,
            "save_in_background",
            lambda self, state: CheckpointingCallback.save(self, self.model, state),
        )
        train(config, foreground)
    background = Home(tmp_path / "bg")
    _slow_background_writes(monkeypatch, 0.5)
    train(config, background)

    ours, ref = _states(background), _states(foreground)
    assert sorted(ours) == sorted(ref) == [256, 512, 768, 1024]
    for steps, state in ref.items():
        mine = ours[steps]
        for part in ("policy", "optimizer"):
            a, b = getattr(mine, part), getattr(state, part)
            flat_a, flat_b = _tensors(a), _tensors(b)
            assert len(flat_a) == len(flat_b) > 0
            for x, y in zip(flat_a, flat_b, strict=True):
                assert torch.equal(x, y), (steps, part)
        assert mine.n_updates == state.n_updates and mine.num_timesteps == steps
        np.testing.assert_array_equal(mine.torch_rng, state.torch_rng)
        np.testing.assert_array_equal(mine.envs.last_obs, state.envs.last_obs)
        assert mine.envs.episodes == state.envs.episodes
        np.testing.assert_equal(mine.numpy_rng, state.numpy_rng)


def _tensors(obj: object) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in _tensors(obj[k])]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    return []


def test_a_background_write_that_fails_stops_the_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path / "c.yaml"))
    home = Home(tmp_path / "home")
    real = folders.write_state

    def full_disk(folder: Path, state):  # type: ignore[no-untyped-def]
        if state.num_timesteps >= 512:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(folder, state)

    monkeypatch.setattr(folders, "write_state", full_disk)
    with pytest.raises(PerfmodeError) as e:
        train(config, home)
    assert str(e.value).startswith(
        f"could not write the checkpoint at 512 steps in {home.checkpoints_dir()}: "
        "No space left on device. step_0000000256 (256 steps) is intact;"
    )
    assert os.listdir(home.checkpoints_dir()) == ["step_0000000256"]
    assert open_checkpoint(home.checkpoints_dir() / "step_0000000256").state.num_timesteps == 256


def _child(tmp_path: Path, how: str, **training: int) -> tuple[subprocess.Popen[str], Home]:
    config = write_config(tmp_path / "c.yaml", training=training)
    home = Home(tmp_path / "home")
    home.root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, how, str(config), str(home.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, home


def _wait_for_line(proc: subprocess.Popen[str], line: str) -> None:
    deadline = time.monotonic() + WAIT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"the trainer never printed {line!r}: {proc.stderr.read() if proc.stderr else ''}")


def test_a_kill_mid_write_leaves_no_half_checkpoint_and_the_next_start_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc, home = _child(tmp_path, "hang", total_timesteps=4096)
    _wait_for_line(proc, "written 512")  # its files are in the temporary folder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=WAIT_S)
    folder = home.checkpoints_dir()
    assert [p.name for p in list_checkpoints(folder)] == ["step_0000000256"]
    assert any(p.name.startswith(".step_0000000512.") for p in folder.iterdir())

    with caplog.at_level(logging.INFO, logger="perfmode"):
        resumed = train(load_config(tmp_path / "c.yaml").with_overrides(total_timesteps=768), home)
    assert resumed.resumed_from == 256 and resumed.timesteps == 768
    assert "a checkpoint write that never finished" in caplog.text
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert open_checkpoint(folder / "step_0000000768").state.num_timesteps == 768


def test_a_stop_during_a_background_write_finishes_it_then_saves_the_final_one(
    tmp_path: Path,
) -> None:
    proc, home = _child(tmp_path, "slow", total_timesteps=100_000)
    _wait_for_line(proc, "written 256")  # that write now sleeps before its rename
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    assert out.strip().endswith("exited")
    folder = home.checkpoints_dir()
    newest, *older = list_checkpoints(folder)
    assert [p.name for p in [newest, *older]][-1] == "step_0000000256"
    for path in (newest, *older):
        assert open_checkpoint(path).state is not None
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    # The stop's checkpoint is the newest one (the boundary it stopped after: 256 itself,
    # when the stop came in the very rollout that followed it), and the status says so.
    status = read_status(home)
    assert status["state"] == "stopped"
    assert status["last_checkpoint"] == str(newest)
    assert status["timesteps"] == open_checkpoint(newest).timesteps


def test_the_process_exits_only_once_a_background_write_is_done(tmp_path: Path) -> None:
    script = """
import sys, time
from pathlib import Path
from perfmode.checkpoint.folders import open_checkpoint, save_checkpoint
from perfmode.checkpoint.writer import BackgroundWriter

source, target = Path(sys.argv[1]), Path(sys.argv[2])
state = open_checkpoint(source).state

def slow(state, meta):
    time.sleep(1.5)
    return save_checkpoint(target, state, meta)

BackgroundWriter(slow).submit(state, {"run": "x"})
print("leaving", flush=True)
"""
    home = Home(tmp_path / "home")
    train(load_config(write_config(tmp_path / "c.yaml", training={"total_timesteps": 256})), home)
    source = home.checkpoints_dir() / "step_0000000256"
    target = tmp_path / "copies"
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving"
    assert open_checkpoint(target / "step_0000000256").state.num_timesteps == 256
