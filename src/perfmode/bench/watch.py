"""What the bench does while it waits: it keeps its children alive, samples memory, the GPU
and other programs' load into the figures being measured, reads the trainer's status.json
and metrics.csv, and reports the progress of the measuring time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from perfmode.base.home import Home
from perfmode.bench.figures import Tally
from perfmode.bench.plan import SAMPLE_S, Progress
from perfmode.bench.processes import Child, tree_rss
from perfmode.governor.gpu import GpuHealth
from perfmode.governor.load import LoadSensor
from perfmode.status.file import read_status
from perfmode.status.model import TrainerStatus


class Watch:
    """The children of one bench, sampled every SAMPLE_S while it waits on them."""

    def __init__(self, root: Path, home: Home, total_s: float, progress: Progress | None) -> None:
        self.root, self.home = root, home
        self.total_s = total_s
        """The measuring time, for the progress line (start-up and warm-up come on top)."""
        self.progress = progress
        self.load = LoadSensor(interval=1.0)
        self.foreign: list[float] = []
        """Other programs' CPU cores, sampled in every measuring window."""
        # The card's name for the machine line; its use is sampled only while the run
        # trains on CUDA (on the CPU another program's GPU work would be counted as ours).
        self.gpu = GpuHealth()
        self.children: list[Child] = []
        self.live: list[Child] = []
        self.trainer: Child | None = None
        self._phase = ("starting", 0.0, 0.0, time.monotonic())
        self._measuring: tuple[Tally, Child] | None = None

    def spawn(self, name: str, cmd: list[str], log: str, *, stdin: bool = False) -> Child:
        child = Child(name, cmd, self.root / log, stdin=stdin)
        self.children.append(child)
        self.live.append(child)
        return child

    def stop(self, child: Child) -> None:
        self.live.remove(child)
        child.stop()

    def close(self) -> None:
        """Every child stopped, whatever happened."""
        for child in self.children:
            child.stop()
        self.gpu.close()

    @contextlib.contextmanager
    def measuring(self, tally: Tally, child: Child) -> Iterator[None]:
        """While inside, samples of ``child``'s tree (and the machine) go into ``tally``."""
        self._measuring = (tally, child)
        try:
            yield
        finally:
            self._measuring = None

    def sample(self, seconds: float, until: Callable[[], Any] | None = None) -> Any:
        """Sample every SAMPLE_S for ``seconds`` or until ``until()`` is truthy (its value);
        a child that exits meanwhile is an error."""
        deadline = time.monotonic() + seconds
        while True:
            if until is not None and (value := until()):
                return value
            for child in self.live:
                # The trainer's target lies far past the bench's time: an exit 0 is a stop (a
                # signal while it trained, saved, or while it started, nothing to save).
                child.check_alive(lambda c=child: c is self.trainer and self._trainer_stopped(c))
            reading = self.load.poll()
            if self._measuring is not None:
                tally, child = self._measuring
                tally.peak_rss = max(tally.peak_rss, tree_rss(child.root))
                gpu = self.gpu.read()
                tally.add_gpu(gpu.util_pct, gpu.mem_used_mib)
                if reading is not None:
                    tally.foreign.append(reading.foreign_cores)
                    self.foreign.append(reading.foreign_cores)
            self._report()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(SAMPLE_S, left))

    def phase(self, what: str, length: float) -> None:
        """From now on the bench does ``what``, for ``length`` s of the measuring time."""
        _, base, previous, _ = self._phase
        self._phase = (what, base + previous, length, time.monotonic())
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        what, base, length, since = self._phase
        done = base + min(length, time.monotonic() - since)
        self.progress(what, done, self.total_s)

    def _trainer_stopped(self, trainer: Child) -> bool:
        return trainer.proc.returncode == 0 or self.status().run.state == "stopped"

    def status(self) -> TrainerStatus:
        return read_status(self.home.status_file()) or TrainerStatus()

    def metrics_rows(self) -> int:
        try:
            with open(self.home.metrics_file(), "rb") as f:
                return max(0, sum(1 for _ in f) - 1)
        except OSError:
            return 0
