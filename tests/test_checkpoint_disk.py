"""A checkpoint that cannot be written (disk full, file too large): one line, exit 1, and the
checkpoints before it intact and resumable."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.config.schema import load_config
from perfmode.training.trainer import train
from tests.conftest import run_perfmode
from tests.trainkit import read_status, write_config

# A network big enough that its weights alone (~160 kB) outgrow the room left below.
BIG = {"ppo": {"net_arch": [128, 128]}}


def file_size_limit(limit: int) -> Callable[[], None]:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG ("File too large").
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int) -> None:
    room = shutil.disk_usage(disk).free - leave
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * room)


@pytest.mark.parametrize("cause", ["file too large", "disk full"])
def test_a_checkpoint_that_cannot_be_written_leaves_one_line_and_the_ones_before(
    tmp_path: Path, cause: str
) -> None:
    path = write_config(
        tmp_path / "big.yaml", **BIG, training={"total_timesteps": 128, "checkpoint_freq": 128}
    )
    with contextlib.ExitStack() as stack:
        if cause == "disk full":
            home = Home(stack.enter_context(small_disk(tmp_path / "disk")) / "home")
        else:
            home = Home(tmp_path / "home")
        home.root.mkdir()
        train(load_config(path), home)
        kept = home.checkpoints_dir() / "step_0000000128"
        limit = None
        if cause == "disk full":
            fill(home.root.parent, leave=48 * 1024)  # room for logs and status, not weights
        else:
            limit = file_size_limit(64 * 1024)

        result = run_perfmode(
            "train",
            "--config",
            str(path),
            "--home",
            str(home.root),
            "--timesteps",
            "256",
            preexec_fn=limit,
            timeout=300,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        reason = "File too large" if cause == "file too large" else "No space left on device"
        assert errors[0].startswith(
            f"Error: could not write the checkpoint at 256 steps in {home.checkpoints_dir()}: "
            f"{reason}. step_0000000128 (128 steps) is intact;"
        )
        assert "run `perfmode train` again to resume" in errors[0]
        # Nothing half-written beside it, and it reads back whole.
        assert os.listdir(home.checkpoints_dir()) == [kept.name]
        assert open_checkpoint(kept).state.num_timesteps == 128
        assert read_status(home)["state"] == "failed"

        # Space again: the run resumes from the checkpoint that was kept.
        (home.root.parent / "filler").unlink(missing_ok=True)
        resumed = train(load_config(path).with_overrides(total_timesteps=256), home)
        assert resumed.resumed_from == 128 and resumed.timesteps == 256
        assert list_checkpoints(home.checkpoints_dir())[0].name == "step_0000000256"
