"""CPU time a process has used, its children counted: the trainer's own share of the machine."""

from __future__ import annotations

import psutil


def own_cpu_seconds(proc: psutil.Process) -> float:
    """CPU seconds of ``proc`` and its children (subprocess envs are the trainer's work)."""
    t = proc.cpu_times()
    total = t.user + t.system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total
