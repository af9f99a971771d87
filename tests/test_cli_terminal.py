"""The command line against its terminal and environment: closed pipes, consoles that are not
UTF-8, homes that cannot be resolved. Real processes: what a shell pipeline does to them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PERFMODE, run_perfmode


def _into_closed_pipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``perfmode ARGS | head -0``, made deterministic: the reader is gone before it starts."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*PERFMODE, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=cwd,
            env={**os.environ, "PERFMODE_HOME": str(cwd)},
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [["train", "--help"], ["status"], ["hold", "--list"], ["config", "show"]],
    ids=lambda a: " ".join(a),
)
def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "settings.json").write_text('{"performance_mode": "quiet"}')
    proc = _into_closed_pipe(*args, cwd=tmp_path)
    assert proc.stderr == ""
    # As `ls | head` ends for ls: killed by SIGPIPE, which a shell reports as 128 + 13.
    assert proc.returncode == 141


def test_a_home_that_is_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    proc = run_perfmode("status", "--home", str(tmp_path / "a"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: --home") and "symlink" in proc.stderr


def test_perfmode_home_at_a_file_is_named_as_the_variable(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run_perfmode("status", env={"PERFMODE_HOME": str(afile)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"Error: PERFMODE_HOME: '{afile}' is a file"), proc.stderr
    # The same value given as --home is named as --home.
    proc = run_perfmode("status", "--home", str(afile), env={"PERFMODE_HOME": None})
    assert proc.stderr.startswith(f"Error: --home: '{afile}' is a file"), proc.stderr


@pytest.mark.parametrize("args", [["ui", "--help"], ["--help"]], ids=lambda a: " ".join(a))
def test_a_console_that_is_not_utf8_gets_the_text_not_a_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    proc = run_perfmode(*args, env={"PYTHONIOENCODING": "iso-8859-1"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    assert "perfmode" in proc.stdout
