"""The home's budget: which of the home's live runs train, with how much, and who waits.

A mode is a budget for all runs of one home together, decided without a central daemon:
every trainer reads the same status files (:mod:`perfmode.governor.peers`) and computes the
same line with :func:`decide_share`, a pure function of

- the live runs, in one order every trainer agrees on: by process start time, then run name
  (a run started later queues behind those already there; a tie cannot split the line);
- the mode, and the cores other programs (not the home's trainers) leave free.

The rules:

- **quiet**: the profile's ``cpu_share`` is the home's *total*, shared equally among the runs
  it serves, each through its own duty cycle (``total / served`` of a core each). Equal
  shares change only *when* a run computes, never *what*, and keep every served run
  answering a switch within a poll. A share below ``MIN_RUN_SHARE`` would make each duty
  cycle sleep long after every step (and a switch wait as long), so quiet serves at most
  ``total / MIN_RUN_SHARE`` runs (5 at the default 0.5 cores); the rest wait in line.
- **performance**: each run gets the cores it uses (its thread count, at least 1) while the
  cores other programs leave free last, in line order: one run per free core for the usual
  one-thread MLP. The first in line always trains (a run never waits for nobody).
- **paused** pauses all (settings.json is the home's); nobody holds a share.

A run that does not fit *waits*: asleep at its next safe point (between two updates), 0 %
CPU, looking again every poll, so it starts within a second of a core freeing up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from perfmode.base.modes import Mode

MIN_RUN_SHARE = 0.1
"""Quiet never gives a run less than this share of a core: the rest of the line waits."""


@dataclass(frozen=True)
class Peer:
    """One live run of the home, as every trainer sees it."""

    run: str
    pid: int
    started: float
    """Its process's start time (seconds since the epoch): its place in line."""
    cores: int = 1
    """Cores it trains with in performance (its thread count)."""


@dataclass(frozen=True)
class Share:
    """What the home's budget gives one run now."""

    state: str
    """'training' or 'waiting'."""
    cpu_share: float
    """The duty cycle's share of a core for this run (1.0: uncapped)."""
    position: int
    """1-based place in the home's line."""
    runs: int
    """Live runs in the home (this one included)."""
    served: int
    """How many of them the budget serves now."""
    reason: str

    @property
    def waiting(self) -> bool:
        return self.state == "waiting"


def in_line(peers: Sequence[Peer]) -> list[Peer]:
    """The home's line: start time, then run name (one entry per run, the earliest)."""
    seen: dict[str, Peer] = {}
    for p in sorted(peers, key=lambda p: (p.started, p.run, p.pid)):
        seen.setdefault(p.run, p)
    return list(seen.values())


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _cores(n: float) -> str:
    whole = abs(n - round(n)) < 1e-9
    value = f"{round(n)}" if whole else f"{n:.2g}"
    return f"{value} core{'' if whole and round(n) == 1 else 's'}"


def _runs(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'}"


def decide_share(
    me: str,
    peers: Sequence[Peer],
    mode: Mode,
    *,
    profile_share: float,
    free_cores: int,
) -> Share:
    """This run's share. ``peers``: the home's live runs, ``me`` among them.

    ``profile_share``: the mode's ``cpu_share`` (quiet: the home's total).
    ``free_cores``: cores other programs than the home's trainers leave free (≥ 1).
    """
    line = in_line(peers)
    names = [p.run for p in line]
    if me not in names:
        raise ValueError(f"run {me!r} is not among the home's runs")
    position = names.index(me) + 1
    n = len(line)
    if mode is Mode.PAUSED:
        return Share("training", profile_share, position, n, 0, "paused: the whole home waits")
    if mode is Mode.PERFORMANCE:
        free = max(1, free_cores)
        used, served = 0, 0
        for p in line:
            if served and used + max(1, p.cores) > free:
                break
            used += max(1, p.cores)
            served += 1
        cores = f"{_cores(free)} free serve{'s' if free == 1 else ''} {_runs(served)}"
        if position > served:
            why = f"waiting: {cores}; {ordinal(position)} in line"
            return Share("waiting", 0.0, position, n, served, why)
        mine = max(1, line[position - 1].cores)
        why = f"performance: {_cores(mine)} of the {_cores(free)} free; {_runs(n)} in the home"
        return Share("training", profile_share, position, n, served, why)
    # quiet (and any other capped profile): the share is the home's total.
    cap = max(1, math.floor(profile_share / MIN_RUN_SHARE + 1e-9))
    served = min(n, cap)
    each = profile_share / served
    total = f"quiet's {_cores(profile_share)} for the home"
    if position > served:
        why = (
            f"waiting: {total} serve {_runs(served)} at {_cores(each)} each; "
            f"{ordinal(position)} in line"
        )
        return Share("waiting", 0.0, position, n, served, why)
    if served == 1:
        why = f"{total}, all to this run"
    else:
        why = f"{total} shared by {_runs(served)}: {_cores(each)} each"
    return Share("training", each, position, n, served, why)
