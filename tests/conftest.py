from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import stable_baselines3  # noqa: F401  (gymnasium sets an environment variable on import)
import torch
from typer.testing import CliRunner

from perfmode.base.home import Home
from perfmode.cli import app

PERFMODE = [sys.executable, "-m", "perfmode"]

SET_WRITER = """
import sys
from perfmode.cli import app
home, n, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    mode = ("quiet", "performance")[(i + offset) % 2]
    try:
        app(["set", mode, "--home", home], standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
"""
"""A `python -c` program: `perfmode set` N times in one process (argv: home, N, offset),
alternating modes; for tests of writers racing each other or an editor."""

# Ceilings for waits on real processes. A busy 2-core machine can make a start or an update
# take many times its idle time; a ceiling only bounds how long a broken test hangs.
WAIT_S = 240.0

_SIGNALS = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]


def _nice() -> int | None:
    return os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None


def _ignored_env(key: str) -> bool:
    # pytest names the current test here; torch records its cache folder once per process.
    return key == "PYTEST_CURRENT_TEST" or key.startswith("TORCH")


def _live_children() -> set[int]:
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.Error:
            continue
    return alive


def _leaked(before: set[int]) -> list[int]:
    """Processes started by the test and still alive; helpers a process that outlives the
    test starts for itself (a module's browser, say) are that process's business."""
    leaked = []
    for pid in _live_children() - before:
        try:
            parents = {p.pid for p in psutil.Process(pid).parents()}
        except psutil.Error:
            continue
        if not parents & before:
            leaked.append(pid)
    return sorted(leaked)


@pytest.fixture(autouse=True)
def _global_state_is_restored() -> Iterator[None]:
    """Each test leaves the pytest process as it found it, or fails saying what it changed.

    An in-process ``train()`` lowers the priority of the whole pytest process (``os.nice``
    cannot be undone without privileges) and every later subprocess inherits it: on a busy
    machine the live tests that follow then starve. So in-process trainers must use
    ``training.nice: 0``. Torch threads and the ``perfmode`` logger are set by the trainer
    and by the CLI as their job; they are put back quietly. Signal handlers, the working
    folder, the environment and child processes must not leak: they are put back (children
    killed) and the test fails.
    """
    nice = _nice()
    threads = torch.get_num_threads()
    handlers = {s: signal.getsignal(s) for s in _SIGNALS}
    cwd = os.getcwd()
    environ = dict(os.environ)
    logger = logging.getLogger("perfmode")
    log_state = (list(logger.handlers), logger.propagate, logger.level)
    children = _live_children()
    yield
    problems = []
    if _nice() != nice:
        problems.append(
            f"the process priority changed from nice {nice} to {_nice()} (an in-process "
            "train() needs training.nice: 0; it cannot be undone)"
        )
    torch.set_num_threads(threads)
    for s, handler in handlers.items():
        if signal.getsignal(s) != handler:
            problems.append(f"the {signal.Signals(s).name} handler was left changed")
            signal.signal(s, handler)
    if os.getcwd() != cwd:
        problems.append(f"the working folder was left at {os.getcwd()}")
        os.chdir(cwd)
    changed = sorted(
        {k for k, _ in set(os.environ.items()) ^ set(environ.items()) if not _ignored_env(k)}
    )
    if changed:
        problems.append(f"the environment was left changed: {changed}")
        for k in changed:
            if k in environ:
                os.environ[k] = environ[k]
            else:
                del os.environ[k]
    for h in logger.handlers:
        if h not in log_state[0]:
            logger.removeHandler(h)
            h.close()
    logger.handlers[:] = log_state[0]
    logger.propagate, logger.level = log_state[1], log_state[2]
    leaked = _leaked(children)
    for pid in leaked:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    if leaked:
        problems.append(f"child processes were left running: {leaked}")
    if problems:
        pytest.fail("test changed global state: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def perfmode_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """perfmode's log records, INFO included, whatever an earlier CLI test did to logging."""
    logger = logging.getLogger("perfmode")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.level, logger.propagate = saved


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.delenv("PERFMODE_HOME", raising=False)
    return Home(root)


@pytest.fixture
def cli(home: Home):
    """Run the CLI in-process against the test home (stdout and stderr kept apart)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [*args, "--home", str(home.root)], env=env)

    return invoke


def run_perfmode(
    *args: str, timeout: float = WAIT_S, env: dict[str, str | None] | None = None, **kw
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process. ``env`` entries of None are unset."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(
        [*PERFMODE, *args], capture_output=True, text=True, timeout=timeout, env=full, **kw
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S, proc=None) -> Any:
    """Poll ``check`` until it returns something true; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            path = getattr(proc, "output_path", None)
            out = Path(path).read_text() if path else proc.stdout.read() if proc.stdout else ""
            raise AssertionError(
                f"the process exited ({proc.returncode}) while waiting for {what}:\n{out}"
            )
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def learned(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The live state of each model as every ``learn()`` of this test starts and ends.

    ``learned["start"][i]`` / ``learned["end"][i]``: see ``trainkit.live_state``;
    ``learned["model"][i]``: the model itself.
    """
    from stable_baselines3 import PPO

    from tests.trainkit import live_state

    record: dict[str, list[Any]] = {"start": [], "end": [], "model": []}
    original = PPO.learn

    def learn(self: Any, *args: Any, **kwargs: Any) -> Any:
        record["start"].append(live_state(self))
        result = original(self, *args, **kwargs)
        record["end"].append(live_state(self))
        record["model"].append(self)
        return result

    monkeypatch.setattr(PPO, "learn", learn)
    return record
