"""A trial's trainer: ``perfmode train`` as a child process, and what it has scored so far.

The child is an ordinary governed run of the home (mode, holds, budget, status, the page all
apply) and knows nothing of Optuna. On Linux it gets SIGTERM if the sweep process dies, and
stops as on Ctrl-C: at the next safe point, saving a checkpoint the retry resumes from.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from perfmode.base.home import Home
from perfmode.base.platform import own_group_kwargs, stop_child, stopped_with_parent
from perfmode.status.file import read_json_object, read_status
from perfmode.training.command import train_command
from perfmode.training.validation import VALIDATION_FILE

STDERR_FILE = "trial.stderr"


class TrialProcess:
    def __init__(self, home: Home, run: str, config: Path) -> None:
        self.home, self.run = home, run
        self.run_dir = home.run_dir(run)
        self.stopping = False
        err = open(self.run_dir / STDERR_FILE, "ab")  # noqa: SIM115 - the child owns it
        cmd = stopped_with_parent(train_command(home.root, run=run, config=config))
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                **own_group_kwargs(),
            )
        finally:
            err.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        """Stop gracefully: the trainer saves a checkpoint and exits 0."""
        if not self.stopping and self.proc.poll() is None:
            self.stopping = True
            stop_child(self.proc)

    def wait(self) -> int:
        return self.proc.wait()

    def scores(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """(reports, final) from the run's validation.json as it is now."""
        doc = read_json_object(self.run_dir / VALIDATION_FILE) or {}
        reports = [
            r
            for r in doc.get("reports") or []
            if isinstance(r, dict)
            and isinstance(r.get("report"), int)
            and isinstance(r.get("return"), int | float)
        ]
        final = doc.get("final") if isinstance(doc.get("final"), dict) else None
        return reports, final

    def last_error(self) -> str:
        try:
            lines = (self.run_dir / STDERR_FILE).read_text("utf-8", "replace").splitlines()
        except OSError:
            return ""
        errors = [line for line in lines if line.startswith("Error:")]
        return (errors or lines or [""])[-1][:300]


def wait_for_run_lock(home: Home, run: str, patience: float = 120.0) -> bool:
    """Wait until no trainer holds ``run`` (the one a dead sweep left is still saving)."""
    deadline = time.monotonic() + patience
    lock = FileLock(home.train_lock(run), timeout=0)
    while True:
        try:
            lock.acquire()
        except Timeout:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
            continue
        lock.release()
        return True


def steps_of(home: Home, run: str) -> int | None:
    status = read_status(home.status_file(run))
    return status.progress.timesteps if status is not None else None
