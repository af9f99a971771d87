"""How far a training run is, for the person watching it.

On a terminal: a progress bar on stderr (steps, percent, steps/s, mode, ETA) with the
trainer's log lines printed above it. Anywhere else (a log file, systemd's journal, a
pipe): a plain line at every 10% of the run and at least every 5 minutes. The same line
goes to train.log in both cases, so a log read later shows the pace of the run.

Fed from the session's poll (a few times a second, from both phases of PPO), so it keeps
moving during a long update too; each call is a clock read and a comparison or two.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any

from perfmode.base.clock import format_time, human_span, utc_now
from perfmode.status.model import ProgressSection

log = logging.getLogger("perfmode.train")

LINE_EVERY_FRACTION = 0.10
LINE_EVERY_S = 300.0
# Speed over the last minute: long enough to span several rollout/update cycles (steps
# only advance during rollouts), short enough to follow a mode switch.
SPEED_WINDOW_S = 60.0
# Before this much time there is no speed worth an ETA (the first steps include start-up).
SPEED_MIN_SPAN_S = 3.0
BAR_REFRESH_S = 0.25
# A record carrying this attribute is a progress line: the bar already shows it on a
# terminal, so the console handler drops it there while train.log keeps it.
PROGRESS_RECORD = "perfmode_progress"


class TrainProgress:
    def __init__(
        self,
        total: int,
        start: int = 0,
        *,
        terminal: bool = False,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.start = total, start
        self.terminal = terminal
        self.stream = stream
        self.clock = clock
        self.steps, self.mode = start, ""
        self._samples: deque[tuple[float, int]] = deque()
        self._step_size = max(1, round(total * LINE_EVERY_FRACTION))
        self._next_milestone = (start // self._step_size + 1) * self._step_size
        self._now = self._last_line = clock()
        self._bar: Any = None
        self._task: Any = None
        self._next_refresh = 0.0
        self._redirected: list[tuple[logging.StreamHandler[Any], Any, logging.Filter]] = []

    # -- numbers --------------------------------------------------------------------

    def speed(self) -> float | None:
        """Steps per second over the last minute; None before there is a span to measure."""
        if not self._samples:
            return None
        # To now, not to the last step: steps stand still during an update.
        t0, s0 = self._samples[0]
        span = self._now - t0
        return (self.steps - s0) / span if span >= SPEED_MIN_SPAN_S and self.steps > s0 else None

    def eta_s(self) -> float | None:
        speed = self.speed()
        return max(self.total - self.steps, 0) / speed if speed else None

    def report(self, into: ProgressSection) -> None:
        """For status.json: when the run should reach its target at the current speed."""
        eta = self.eta_s()
        into.eta_at = None if eta is None else format_time(utc_now() + timedelta(seconds=eta))
        into.eta_s = None if eta is None else round(eta, 1)

    def line(self) -> str:
        pct = f" ({self.steps / self.total:.1%})" if self.total else ""
        speed, eta = self.speed(), self.eta_s()
        return (
            f"⏳ {self.steps:,} / {self.total:,} steps{pct}, "
            f"{'?' if speed is None else f'{speed:,.0f}'} steps/s, {self.mode}, "
            f"ETA {'?' if eta is None else human_span(eta)}"
        )

    # -- feeding --------------------------------------------------------------------

    def update(self, steps: int, mode: str) -> None:
        now = self._now = self.clock()
        self.steps, self.mode = steps, mode
        samples = self._samples
        if not samples or steps != samples[-1][1]:
            samples.append((now, steps))
        while len(samples) > 2 and now - samples[1][0] >= SPEED_WINDOW_S:
            samples.popleft()
        if steps >= self._next_milestone or now - self._last_line >= LINE_EVERY_S:
            self._log_line(now)
        if self._bar is not None and now >= self._next_refresh:
            self._next_refresh = now + BAR_REFRESH_S
            self._refresh_bar()

    def _log_line(self, now: float) -> None:
        self._last_line = now
        while self._next_milestone <= self.steps:
            self._next_milestone += self._step_size
        if self.steps < self.total:  # the run's own last line says it finished
            log.info("%s", self.line(), extra={PROGRESS_RECORD: True})

    # -- the bar --------------------------------------------------------------------

    def __enter__(self) -> TrainProgress:
        if self.terminal:
            self._start_bar()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._refresh_bar()
            self._bar.stop()
            self._bar = None
        for handler, stream, drop in self._redirected:
            handler.setStream(stream)
            handler.removeFilter(drop)
        self._redirected.clear()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.file_proxy import FileProxy
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        stream = self.stream or sys.stderr
        # soft_wrap: log lines keep their text whole (paths!); the terminal wraps them.
        console = Console(file=stream, stderr=stream is sys.stderr, soft_wrap=True)
        self._bar = Progress(
            TextColumn("{task.fields[mode]:<11}"),
            BarColumn(),
            TextColumn("{task.completed:>,.0f} / {task.total:,.0f} steps"),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]} steps/s"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            auto_refresh=False,  # refreshed from update(): no thread beside the trainer's
        )
        self._task = self._bar.add_task(
            "train", total=self.total, completed=self.steps, mode=self.mode, speed="?", eta="?"
        )
        # Log lines go above the bar instead of through it; progress lines not at all.
        drop = _DropProgress()
        for handler in logging.getLogger("perfmode").handlers:
            if type(handler) is logging.StreamHandler and handler.stream is stream:
                self._redirected.append((handler, handler.stream, drop))
                handler.setStream(FileProxy(console, stream))
                handler.addFilter(drop)
        self._bar.start()

    def _refresh_bar(self) -> None:
        speed, eta = self.speed(), self.eta_s()
        self._bar.update(
            self._task,
            completed=min(self.steps, self.total),
            mode=self.mode,
            speed="?" if speed is None else f"{speed:,.0f}",
            eta="?" if eta is None else _clock_span(eta),
        )
        self._bar.refresh()


class _DropProgress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, PROGRESS_RECORD, False)


def _clock_span(seconds: float) -> str:
    """``4:05``, ``1:02:03``, ``3d 04:05:06``: a countdown that keeps its width."""
    s = round(seconds)
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if days:
        return f"{days}d {h:02d}:{m:02d}:{s:02d}"
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
