"""README: "Bad input is one line on stderr and exit status 2 (other failures: 1); nothing is
half-written." Errors the library raises (bad files, names, times, rules, devices), each
counting the lines on stderr: in-process (CliRunner keeps stderr apart) for speed, and one
real process to show that nothing else gets in. Errors Typer catches itself (a bad value for
a typed option) are in test_cli_conventions.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perfmode.base.home import Home
from tests.conftest import run_perfmode
from tests.trainkit import write_config


def _one_line_error(result, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{result.stderr}"
    assert lines[0].startswith("Error: ") and needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--config", "{tmp}/missing.yaml"], "missing.yaml does not exist"),
        (["train", "--config", "{tmp}/bad.yaml"], "training.n_envs"),
        (["train", "--data", "{tmp}/missing.csv"], "missing.csv"),
        (["train", "--run", "../escape"], "run name '../escape'"),
        (["schedule", "--night", "25:00", "--day", "08:00"], "bad time '25:00' for --night"),
        (["schedule", "--rule", "61 18 * * *=quiet"], "bad rule"),
        (["evaluate"], "pass either --checkpoint PATH or --baseline"),
        (["evaluate", "--baseline", "flat", "--data", "{tmp}/missing.csv"], "missing.csv"),
    ],
)
def test_bad_input_is_one_line_on_stderr_exit_2_and_writes_nothing(
    cli, home: Home, tmp_path: Path, args: list[str], needle: str
) -> None:
    (tmp_path / "bad.yaml").write_text("training:\n  n_envs: 0\n")
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.stderr
    _one_line_error(result, needle)
    assert list(home.root.iterdir()) == []


def test_the_real_train_command_keeps_bad_input_to_one_line(home: Home, tmp_path: Path) -> None:
    # A real process: nothing that torch or another library prints on import gets in.
    (tmp_path / "bad.yaml").write_text("training:\n  n_envs: 0\n")
    result = run_perfmode("train", "--config", str(tmp_path / "bad.yaml"), "--home", str(home.root))
    assert result.returncode == 2
    _one_line_error(result, "training.n_envs")
    assert list(home.root.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_one_line(cli, home: Home, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", training={"device": "auto"})
    result = cli("train", "--config", str(config), "--device", "cuda")
    assert result.exit_code == 2
    _one_line_error(result, "--device cuda")
    assert list(home.root.iterdir()) == []


def test_other_failures_are_one_line_and_exit_1(home: Home) -> None:
    result = run_perfmode("evaluate", "--checkpoint", "latest", "--home", str(home.root))
    assert result.returncode == 1
    _one_line_error(result, "no checkpoints in")
