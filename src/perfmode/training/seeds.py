"""``perfmode train --seeds 0-3``: several seeds of one config, each a run of its own.

Each seed is a separate ``perfmode train`` process with ``--seed N --run <run>-s<N>``, so each
resumes on its own (the same command again resumes every one of them) and the home's budget
decides which of them train at a time (the rest wait, see :mod:`perfmode.governor.budget`).

The parent:

- prints each child's lines prefixed with its run name (the children see a pipe, so they
  print progress lines, not bars);
- waits for all of them;
- turns one stop (Ctrl-C or SIGTERM; Ctrl-Break on Windows: the platform's
  ``stop_signals``) into one stop for every child (``stop_process``: stop at the next safe
  point and save), whichever process the signal reached: the children run in their own
  process group, so a terminal's Ctrl-C reaches the parent only and never twice; a second
  stop makes the children quit at once (``quit_child``), as a second Ctrl-C does one
  trainer;
- exits with the worst child's status (0 only when every child succeeded).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

from perfmode.base.home import check_run_name
from perfmode.base.platform import detached_kwargs, on_stop_signals, quit_child, stop_process
from perfmode.errors import UsageError

MAX_SEEDS = 256
_RANGE = re.compile(r"^(\d{1,9})-(\d{1,9})$")
_ONE = re.compile(r"^\d{1,9}$")


def parse_seeds(text: str) -> list[int]:
    """``0-3`` → [0, 1, 2, 3]; ``0,2,5`` → [0, 2, 5]; ranges and lists mix (``0-2,7``)."""
    hint = (
        f"--seeds {text[:40]!r} is not a list of seeds; give a range (0-3), a list (0,2,5) "
        f"or both (0-2,7): whole numbers from 0, at most {MAX_SEEDS} seeds"
    )
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if m := _RANGE.match(part):
            first, last = int(m[1]), int(m[2])
            if last < first or last - first >= MAX_SEEDS:
                raise UsageError(hint)
            seeds.extend(range(first, last + 1))
        elif _ONE.match(part):
            seeds.append(int(part))
        else:
            raise UsageError(hint)
        if len(seeds) > MAX_SEEDS:
            raise UsageError(hint)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text[:40]!r} names a seed twice; name each seed once")
    return seeds


def seed_runs(run: str, seeds: Sequence[int]) -> list[str]:
    """The runs' names, checked before anything starts."""
    return [check_run_name(f"{run}-s{seed}") for seed in seeds]


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by a signal: as a shell reports it


def _relay(prefix: str, stream: IO[str], out: IO[str], lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            out.write(f"[{prefix}] {line}")
            out.flush()


class SeedRuns:
    """The children and the one stop they share."""

    def __init__(self, commands: Sequence[tuple[str, list[str]]]) -> None:
        self.commands = commands
        self.procs: list[subprocess.Popen[str]] = []
        self.stops = 0

    def _stop(self, signum: int, frame: Any) -> None:
        self.stops += 1
        # First stop: save and stop; again: quit at once (the trainer's second Ctrl-C).
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    if self.stops == 1:
                        stop_process(p.pid)
                    else:
                        quit_child(p)

    @contextlib.contextmanager
    def _handlers(self) -> Iterator[None]:
        with on_stop_signals(self._stop):
            yield

    def run(self, out: IO[str] = sys.stdout) -> int:
        lock = threading.Lock()
        relays = []
        with self._handlers():
            for name, argv in self.commands:
                if self.stops:
                    break  # a stop while starting: start no more
                proc = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    **detached_kwargs(),  # a terminal's Ctrl-C reaches the parent only
                )
                self.procs.append(proc)
                assert proc.stdout is not None
                t = threading.Thread(target=_relay, args=(name, proc.stdout, out, lock))
                t.daemon = True
                t.start()
                relays.append(t)
            codes = []
            for proc in self.procs:
                while True:
                    try:
                        codes.append(_exit_status(proc.wait()))
                        break
                    except KeyboardInterrupt:  # pragma: no cover - handlers replace it
                        continue
        for t in relays:
            t.join(timeout=5)
        runs = [name for name, _ in self.commands]
        summary = ", ".join(f"{name} {code}" for name, code in zip(runs, codes, strict=False))
        left = runs[len(codes) :]
        out.write(
            f"Exit status per run: {summary}"
            + (f"; not started: {', '.join(left)}" if left else "")
            + "\n"
        )
        return max(codes, default=0)
