"""A `perfmode train` process whose log lines are timestamped as they arrive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from perfmode.training.command import train_command


class Trainer:
    def __init__(self, home: Path, *args: str) -> None:
        self.home = home
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [*os.environ.get("BENCH_PREFIX", "").split(), *train_command(home, *args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_line(self, needle: str, after: int = 0, timeout: float = 60) -> tuple[int, float]:
        """Index and arrival time of the first line from ``after`` on that contains ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.lines)):
                if needle in self.lines[i][1]:
                    return i, self.lines[i][0]
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "trainer exited:\n" + "\n".join(line for _, line in self.lines[-20:])
                )
            time.sleep(0.002)
        raise TimeoutError(needle)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "runs" / "default" / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=120)


def start_quiet(home: Path, *args: str) -> Trainer:
    """A long run (on the default config unless ``args`` say otherwise), started in quiet
    mode and past its first line."""
    set_mode(home, "quiet")
    trainer = Trainer(home, "--timesteps", "1000000000", *args)
    try:
        trainer.wait_line("Performance mode: quiet", timeout=120)
    except BaseException:
        trainer.stop()
        raise
    return trainer


def set_mode(home: Path, mode: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "perfmode", "set", mode, "--home", str(home)],
        check=True,
        capture_output=True,
    )


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]
