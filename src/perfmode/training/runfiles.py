"""A run's files around training: its lock, SB3's logger and TensorBoard folder, --fresh."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from perfmode.base.home import Home
from perfmode.errors import PerfmodeError
from perfmode.status.file import read_status

log = logging.getLogger("perfmode.train")


def tensorboard_dir(home: Home | None, run: str) -> str | None:
    if home is None or importlib.util.find_spec("tensorboard") is None:
        return None
    return str(home.run_dir(run) / "tensorboard")


@contextlib.contextmanager
def run_lock(home: Home, run: str) -> Iterator[None]:
    lock = FileLock(home.train_lock(run), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        status = read_status(home.status_file(run))
        pid = (status.run.pid if status else None) or "unknown"
        raise PerfmodeError(
            f"run {run!r} in {home.root} is already being trained (pid {pid}); stop that "
            "trainer first (Ctrl-C, or kill the pid), or train another run with --run NAME"
        ) from None
    try:
        yield
    finally:
        lock.release()


def sb3_logger(home: Home, run: str, *, resumed: bool) -> Any:
    """SB3's logger, writing only inside the home: its default makes /tmp/SB3-<time>."""
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.utils import configure_logger

    tensorboard = tensorboard_dir(home, run)
    if tensorboard is None:
        return Logger(folder=None, output_formats=[])
    return configure_logger(0, tensorboard, run, reset_num_timesteps=not resumed)


def archive_run(home: Home, run: str) -> None:
    """--fresh: the run's checkpoints, metrics.csv and train.log go to archive/<time>/."""
    parts = [home.checkpoints_dir(run), home.metrics_file(run), home.log_file(run)]
    present = [p for p in parts if p.exists() and not (p.is_dir() and not any(p.iterdir()))]
    if not present:
        return
    archive = home.run_dir(run) / "archive"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = archive / stamp
    n = 1
    while target.exists():
        n += 1
        target = archive / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for p in present:
        if p == home.log_file(run):
            _release_log_file(p)
        p.rename(target / p.name)
    log.info(
        "🗄️  --fresh: moved the old %s to %s",
        ", ".join(p.name for p in present),
        target,
    )


def _release_log_file(path: Path) -> None:
    # A handler writing to train.log would follow the renamed file into the archive; closing
    # its stream makes its next line open train.log afresh (its mode is append).
    for handler in logging.getLogger("perfmode").handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                    handler.stream = None  # type: ignore[assignment]
            finally:
                handler.release()
