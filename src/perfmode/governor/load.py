"""The load sensor: how much CPU the machine's *other* programs use right now.

Other programs' load = all CPU time spent on the machine minus this process's own (and its
children's, e.g. subprocess envs), over the last sampling interval, in cores. It answers
"how many cores are free for training?" (the performance mode's thread choice: every
other program counts) and "is someone using the computer?" (the auto mode: other perfmode
trainers do not count, or two runs side by side would each hold the other in quiet).

One sample costs two small reads (``/proc/stat`` and this process's times on Linux), plus
the CPU times of the other trainers, so it is cheap at the default interval of a couple of
seconds.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from perfmode.base.cputime import own_cpu_seconds


def _busy_seconds(t: psutil._common.scputimes) -> float:  # type: ignore[name-defined]
    # Everything but idle and iowait (a CPU waiting on a disk is free to compute).
    return sum(
        getattr(t, f) for f in t._fields if f not in ("idle", "iowait", "guest", "guest_nice")
    )


@dataclass(frozen=True)
class LoadReading:
    foreign_cores: float
    """Cores other programs used over the interval (0 .. cores)."""
    own_cores: float
    """Cores this process (and its children) used."""
    cores: int
    """Cores this process may run on."""
    trainer_cores: float = 0.0
    """The part of ``foreign_cores`` other perfmode trainers used."""

    @property
    def program_cores(self) -> float:
        """Cores other programs than perfmode's trainers used: what auto judges."""
        return max(0.0, round(self.foreign_cores - self.trainer_cores, 3))

    @property
    def free_cores(self) -> int:
        """Cores nobody else is using, rounded to the nearest whole core, at least 1."""
        return max(1, min(self.cores, math.floor(self.cores - self.foreign_cores + 0.5)))


TRAINERS_REFRESH_S = 10.0
"""How often the list of other trainers is asked for again (a new run rarely appears)."""


class LoadSensor:
    """Samples the machine's CPU use at most every ``interval`` seconds.

    ``trainers`` lists the pids of other perfmode trainers (their CPU is reported apart).
    """

    def __init__(
        self, interval: float = 2.0, trainers: Callable[[], Iterable[int]] | None = None
    ) -> None:
        self.interval = interval
        self._trainers = trainers
        self._trainer_pids: list[int] = []
        self._trainers_at = -math.inf
        self._trainer_cpu: dict[int, float] = {}  # pid -> its tree's CPU seconds last time
        self._proc = psutil.Process()
        # Only the CPUs this process may run on count: load elsewhere does not slow us.
        try:
            self._cpus: list[int] | None = sorted(self._proc.cpu_affinity() or [])
        except (AttributeError, psutil.Error):  # macOS has no affinity
            self._cpus = None
        self.cores = len(self._cpus) if self._cpus else (psutil.cpu_count() or 1)
        self._last = self._sample()
        self._trainer_seconds(time.time())  # each running trainer's CPU so far: the baseline
        self.reading: LoadReading | None = None

    def _sample(self) -> tuple[float, float, float]:
        if self._cpus is None:
            busy = _busy_seconds(psutil.cpu_times())
        else:
            per_cpu = psutil.cpu_times(percpu=True)
            busy = sum(_busy_seconds(per_cpu[i]) for i in self._cpus if i < len(per_cpu))
        return time.monotonic(), busy, own_cpu_seconds(self._proc)

    def poll(self) -> LoadReading | None:
        """A new reading when ``interval`` has passed since the last, else None."""
        now = time.monotonic()
        if now - self._last[0] < self.interval:
            return None
        since = time.time() - (now - self._last[0])
        t, busy, own = self._sample()
        wall = t - self._last[0]
        all_cores = (busy - self._last[1]) / wall
        own_cores = (own - self._last[2]) / wall
        self._last = (t, busy, own)
        foreign = max(0.0, min(float(self.cores), all_cores - own_cores))
        trainers = min(foreign, self._trainer_seconds(since) / wall)
        self.reading = LoadReading(
            round(foreign, 3), round(own_cores, 3), self.cores, round(trainers, 3)
        )
        return self.reading

    def _trainer_seconds(self, since: float) -> float:
        """CPU seconds the other trainers used since the last sample (wall clock ``since``)."""
        if self._trainers is None:
            return 0.0
        now = time.monotonic()
        if now - self._trainers_at >= TRAINERS_REFRESH_S:
            self._trainers_at = now
            # A status file unreadable this time: keep the last list.
            with contextlib.suppress(Exception):
                self._trainer_pids = [p for p in self._trainers() if p != self._proc.pid]
        total, seen = 0.0, {}
        for pid in self._trainer_pids:
            try:
                proc = psutil.Process(pid)
                cpu = own_cpu_seconds(proc)
                created = proc.create_time()
            except psutil.Error:
                continue
            seen[pid] = cpu
            last = self._trainer_cpu.get(pid)
            if last is not None:
                total += max(0.0, cpu - last)
            elif created >= since:
                total += cpu  # started within the interval: all its CPU time is in it
        self._trainer_cpu = seen
        return total
