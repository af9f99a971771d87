"""``perfmode bench``: how fast the user's config trains on this machine, per mode and
against plain Stable-Baselines3.

Every figure comes from real processes in a temporary home that is removed afterwards
(never the user's home):

1. A ``perfmode train`` subprocess starts in quiet mode; plain SB3
   (:mod:`perfmode.bench.reference`) starts beside it, builds its model and waits, so the
   two start-ups overlap. Once both are up, the trainer warms up in performance mode: the
   thread trial of ``torch_threads: auto`` happens here. None of this is measured.
2. The mode alternates quiet, performance, quiet, ... through settings.json (as ``perfmode
   set`` does) in equal segments over 3/4 of the time. The first seconds after each switch
   are skipped, so the figures describe the mode, not the switch.
3. The trainer stops; plain SB3 trains alone for the last 1/4, its first cycle excluded.

Per mode: steps/s (the trainer's timesteps over wall time, from the heartbeats in
status.json), CPU cores (CPU time of the process tree over wall time), peak memory (RSS of
the process tree, sampled) and, on CUDA, GPU use (NVML's utilisation and the card's memory
in use, sampled; ``null`` on the CPU). Other programs' CPU use is measured alongside,
because it changes every figure.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation, sweep.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from perfmode.bench.figures import metrics_timeline
from perfmode.bench.plan import MAX_MINUTES, MIN_MINUTES, BenchRequest, Plan, Progress
from perfmode.bench.processes import one_stop
from perfmode.bench.runner import Bench
from perfmode.config.schema import Config
from perfmode.errors import UsageError

__all__ = ["BenchRequest", "Plan", "check_plot_path", "check_request", "run_bench"]


def check_request(request: BenchRequest) -> Config:
    """The config both children train on (``--data`` folded in); every bad input fails
    here, before anything starts."""
    if not MIN_MINUTES <= request.minutes <= MAX_MINUTES:
        raise UsageError(
            f"--minutes is {request.minutes:g}; it must be from {MIN_MINUTES:g} to {MAX_MINUTES:g}"
        )
    if request.plot is not None:
        check_plot_path(request.plot)
    config = request.config
    if request.data is not None:
        data = request.data
        if data != "synthetic" and Path(data).expanduser().exists():
            data = str(Path(data).expanduser().resolve())  # the children's cwd may differ
        config = config.with_data(data)
    from perfmode.env import load_market

    load_market(config.env)  # a bad price file fails here, in one line
    return config


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot {path}: the chart is a PNG; give a file name ending in .png")
    folder = path.expanduser().parent
    if not folder.is_dir():
        raise UsageError(f"--plot {path}: folder {folder} does not exist; create it first")


def run_bench(request: BenchRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Bench the request's config; Ctrl-C (or SIGTERM) stops the children and re-raises
    KeyboardInterrupt, once: later copies of that Ctrl-C change nothing (``one_stop``)."""
    config = check_request(request)
    with (
        one_stop(),
        tempfile.TemporaryDirectory(prefix="perfmode-bench-", ignore_cleanup_errors=True) as tmp,
    ):
        bench = Bench(request, config, Path(tmp), progress)
        result = bench.run()
        timeline = metrics_timeline(bench.home.metrics_file(), bench.t0_wall)
    if request.plot is not None:
        from perfmode.evaluation.plot import plot_bench

        ref = result["rows"]["plain_sb3"]
        plot_bench(
            request.plot,
            timeline,
            [(s["start_s"], s["end_s"], s["mode"]) for s in result["segments"]],
            reference=ref["steps_per_s"] if ref else None,
            title=f"perfmode bench: {result['config']}, {result['data']}",
        )
        result["plot"] = str(request.plot)
    return result
