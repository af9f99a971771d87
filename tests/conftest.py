from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from perfmode.cli import app
from perfmode.home import Home

PERFMODE = [sys.executable, "-m", "perfmode"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.delenv("PERFMODE_HOME", raising=False)
    return Home(root)


@pytest.fixture
def cli(home: Home):
    """Run the CLI in-process against the test home."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [*args, "--home", str(home.root)], env=env)

    return invoke


def run_perfmode(
    *args: str, timeout: float = 60, env: dict[str, str | None] | None = None, **kw
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process. ``env`` entries of None are unset."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(
        [*PERFMODE, *args], capture_output=True, text=True, timeout=timeout, env=full, **kw
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, proc=None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"trainer exited ({proc.returncode}) while waiting for {what}:\n{proc.stdout.read()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
