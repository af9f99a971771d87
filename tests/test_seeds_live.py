"""``perfmode train --seeds``: one run per seed, one stop for all, the worst exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.base.platform import process
from perfmode.checkpoint.folders import list_checkpoints
from perfmode.training import seeds
from tests.conftest import run_perfmode
from tests.trainkit import write_config

# A child that says which signals it got, then exits 0 on the first SIGTERM (as a trainer
# saves and exits); SIGINT is what a trainer reads as "quit at once".
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    name = sys.argv[1]
    def on(sig, frame):
        print(f"{name} got {signal.Signals(sig).name}", flush=True)
        sys.exit(0 if sig == signal.SIGTERM else 130)
    signal.signal(signal.SIGTERM, on)
    signal.signal(signal.SIGINT, on)
    print(f"{name} ready", flush=True)
    time.sleep(60)
    """
)
PARENT = textwrap.dedent(
    """
    import sys
    from perfmode.training.seeds import SeedRuns
    child = sys.argv[1]
    code = SeedRuns([(n, [sys.executable, "-c", child, n]) for n in ("s0", "s1")]).run()
    sys.exit(code)
    """
)


def test_the_exit_status_is_the_worst_childs(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from perfmode.training.seeds import SeedRuns
        runs = [("ok", [sys.executable, "-c", "pass"]), ("bad", [sys.executable, "-c", "exit(3)"])]
        sys.exit(SeedRuns(runs).run())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "Exit status per run: ok 0, bad 3"


def test_one_ctrl_c_at_the_terminal_is_one_stop_for_every_run() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert parent.stdout is not None
        lines = []
        while sum("ready" in line for line in lines) < 2:
            line = parent.stdout.readline()
            assert line, lines
            lines.append(line)
        # Ctrl-C: the terminal signals the whole foreground process group.
        os.killpg(parent.pid, signal.SIGINT)
        out, _ = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    got = [line for line in (lines + out.splitlines()) if " got " in line]
    assert sorted(line.strip() for line in got) == ["[s0] s0 got SIGTERM", "[s1] s1 got SIGTERM"]
    assert parent.returncode == 0


class _WindowsChild:
    """A child as Windows' ``Popen`` has it: ``send_signal`` takes no Ctrl-C."""

    pid = 4242

    def __init__(self) -> None:
        self.calls: list[object] = []

    def poll(self) -> None:
        return None

    def send_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            raise ValueError("Unsupported signal: 2")
        self.calls.append(sig)

    def kill(self) -> None:
        self.calls.append("kill")


def test_a_second_stop_quits_the_children_the_way_the_system_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def quit_child(proc: object) -> None:
        process.quit_child(proc, system="windows")  # type: ignore[arg-type]

    monkeypatch.setattr(seeds, "stop_process", lambda pid: None)
    monkeypatch.setattr(seeds, "quit_child", quit_child)
    runs = seeds.SeedRuns([])
    children = [_WindowsChild(), _WindowsChild()]
    runs.procs = children  # type: ignore[assignment]
    runs._stop(signal.SIGINT, None)
    assert [c.calls for c in children] == [[], []]  # the first: save and stop
    runs._stop(signal.SIGINT, None)
    assert [c.calls for c in children] == [["kill"], ["kill"]]


def test_seeds_train_one_run_each_and_the_same_command_resumes_each(home: Home, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", training={"total_timesteps": 256})
    args = ("train", "--config", str(config), "--home", str(home.root), "--seeds", "0,3")
    t0 = time.monotonic()
    done = run_perfmode(*args, "--run", "sw")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "Starting 2 runs: sw-s0, sw-s3"
    for run in ("sw-s0", "sw-s3"):
        assert list_checkpoints(home.checkpoints_dir(run)), run
        assert f"[{run}] ✅ Finished" in done.stdout
    assert "training.seed = 3" in home.log_file("sw-s3").read_text()
    again = run_perfmode(*args, "--run", "sw")
    assert again.returncode == 0, again.stdout + again.stderr
    for run in ("sw-s0", "sw-s3"):
        assert f"[{run}] ✅ Run '{run}' is already at 256 steps" in again.stdout, again.stdout
    assert time.monotonic() - t0 < 600
