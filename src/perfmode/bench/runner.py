"""One bench, top to bottom: :meth:`Bench.run` starts the trainer and plain SB3, warms up,
alternates the modes, measures plain SB3, and stops everything whatever happens. The
waiting, sampling and reading of the trainer's files is :class:`~perfmode.bench.watch.Watch`'s."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from perfmode.base.clock import parse_time
from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.bench.figures import Tally, bench_notes, machine_info, ratio, ratios
from perfmode.bench.plan import (
    APPLY_TIMEOUT_S,
    HUGE_TIMESTEPS,
    START_TIMEOUT_S,
    BenchRequest,
    Plan,
    Progress,
)
from perfmode.bench.processes import Child, read_event, tree_cpu_seconds
from perfmode.bench.watch import Watch
from perfmode.config.schema import Config, config_to_mapping
from perfmode.errors import PerfmodeError
from perfmode.settings.store import SettingsStore
from perfmode.training.command import train_command


class Bench:
    def __init__(
        self, request: BenchRequest, config: Config, root: Path, progress: Progress | None
    ) -> None:
        self.request, self.config, self.root = request, config, root
        self.plan = Plan(request.minutes, request.reference)
        self.home = Home(root)
        self.store = SettingsStore(self.home.settings)
        self.events = root / "reference-events.jsonl"
        self.watch = Watch(
            root, self.home, self.plan.mode_seconds + self.plan.reference_seconds, progress
        )
        self.tallies = {Mode.QUIET: Tally(), Mode.PERFORMANCE: Tally()}
        self.reference: Tally | None = None
        self.segments: list[dict[str, Any]] = []
        self.device = "cpu"
        self.threads: dict[str, Any] | None = None
        self.t0_wall = time.time()
        self.t0 = time.monotonic()

    # -- the run, top to bottom --

    def run(self) -> dict[str, Any]:
        try:
            trainer = self.watch.spawn("trainer", self._trainer_cmd(), "trainer.log")
            self.watch.trainer = trainer
            # Plain SB3 imports and builds its model meanwhile, then waits for its turn.
            reference = self._spawn_reference() if self.plan.reference else None
            self._warm_up()
            self._alternate(trainer)
            self._stop(trainer)  # the reference gets the machine to itself
            if reference is not None:
                self._measure_reference(reference)
        finally:
            self.watch.close()
        return self.result()

    def _trainer_cmd(self) -> list[str]:
        self.store.set_mode(Mode.QUIET, changed_by="bench")
        return train_command(
            self.root, "--fresh", "--timesteps", str(HUGE_TIMESTEPS), *self._config_args()
        )

    def _spawn_reference(self) -> Child:
        cmd = [sys.executable, "-m", "perfmode.bench.reference", "--events", str(self.events)]
        cmd += ["--seconds", f"{self.plan.reference_seconds:.3f}", *self._config_args()]
        return self.watch.spawn("plain SB3 reference", cmd, "reference.log", stdin=True)

    def _config_args(self) -> list[str]:
        # One file for both children: the same env, data and hyperparameters, by construction.
        path = self.root / "config.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump(config_to_mapping(self.config)), encoding="utf-8")
        return ["--config", str(path)]

    def _warm_up(self) -> None:
        """Start-up, the first update, and performance mode's thread trial: not measured."""
        self.watch.phase("starting (not measured)", 0.0)

        def started() -> bool:
            ready = not self.plan.reference or read_event(self.events, "ready") is not None
            return ready and self.watch.metrics_rows() >= 1

        if not self.watch.sample(START_TIMEOUT_S, started):
            raise PerfmodeError(
                f"the trainer or plain SB3 did not finish starting within {START_TIMEOUT_S:g} s; "
                "is the config very large for this machine?"
            )
        self.device = self.watch.status().run.device or self.device
        if self.device != "cuda":
            self.watch.gpu.close()
        # Only now: the trial must not take plain SB3's start-up for another program's load.
        self.store.set_mode(Mode.PERFORMANCE, changed_by="bench")
        self.watch.phase("warming up: performance mode picks its threads (not measured)", 0.0)
        rows = self.watch.metrics_rows()
        self.watch.sample(self.plan.trial_seconds, lambda: self._threads_settled(rows))

    def _threads_settled(self, rows_before: int) -> bool:
        status = self.watch.status()
        choice = status.threads.choice
        rows = self.watch.metrics_rows() - rows_before
        if status.mode.applied_mode != Mode.PERFORMANCE.value:
            return False
        # A trial starts after the switch's cycle and one more: three rows show its state.
        return (choice == "profile" and rows >= 1) or (choice == "measured" and rows >= 3)

    def _alternate(self, trainer: Child) -> None:
        plan = self.plan
        for i in range(plan.segments):
            mode = Mode.QUIET if i % 2 == 0 else Mode.PERFORMANCE
            start_wall, start = time.time(), time.monotonic()
            self.store.set_mode(mode, changed_by="bench")
            self.watch.phase(f"{mode.value} {i + 1}/{plan.segments}", plan.segment_seconds)

            def applied(mode: Mode = mode) -> bool:
                return self.watch.status().mode.applied_mode == mode.value

            if not self.watch.sample(APPLY_TIMEOUT_S, applied):
                raise PerfmodeError(
                    f"the trainer did not apply {mode.value} mode within {APPLY_TIMEOUT_S:g} s"
                )
            self.watch.sample(start + plan.settle_seconds - time.monotonic())
            window = self._measure_window(trainer, mode, start + plan.segment_seconds)
            self.segments.append(
                {
                    "mode": mode.value,
                    "start_s": round(start_wall - self.t0_wall, 2),
                    "end_s": round(time.time() - self.t0_wall, 2),
                    **window,
                }
            )
        threads = self.watch.status().threads
        self.threads = threads.to_json() if threads.choice else None

    def _measure_window(self, trainer: Child, mode: Mode, until: float) -> dict[str, Any]:
        """From now to ``until``: the trainer's steps from its heartbeats, its CPU and memory."""
        tally = self.tallies[mode]
        wall0, t0, cpu0 = time.time(), time.monotonic(), tree_cpu_seconds(trainer.root)
        beats: list[tuple[float, int]] = []  # (heartbeat, timesteps) written in the window

        def beat() -> bool:
            status = self.watch.status()
            at, steps = parse_time(status.run.heartbeat), status.progress.timesteps
            if at is None or steps is None or status.mode.applied_mode != mode:
                return False
            if at.timestamp() >= wall0 and (not beats or beats[-1][0] != at.timestamp()):
                beats.append((at.timestamp(), steps))
            return False

        with self.watch.measuring(tally, trainer):
            self.watch.sample(max(until - t0, 1.0), beat)
        wall, cpu = time.monotonic() - t0, tree_cpu_seconds(trainer.root) - cpu0
        steps, seconds = 0, 0.0
        if len(beats) >= 2:
            steps, seconds = beats[-1][1] - beats[0][1], beats[-1][0] - beats[0][0]
        tally.add(steps, seconds, cpu, wall)
        return {
            "measured_from_s": round(wall0 - self.t0_wall, 2),
            "steps_per_s": ratio(steps, seconds, 1),
            "cpu_cores": ratio(cpu, wall, 3),
        }

    def _stop(self, child: Child) -> None:
        self.watch.phase(f"stopping the {child.name}", 0.0)
        self.watch.stop(child)

    def _measure_reference(self, child: Child) -> None:
        plan, events = self.plan, self.events
        self.watch.phase("plain SB3: first rollout and update (not measured)", 0.0)
        child.send("go")
        start = self.watch.sample(START_TIMEOUT_S, lambda: read_event(events, "measuring"))
        if not start:
            raise PerfmodeError(
                f"plain SB3 did not finish its first update within {START_TIMEOUT_S:g} s"
            )
        self.watch.phase("plain SB3", plan.reference_seconds)
        self.reference = tally = Tally()
        with self.watch.measuring(tally, child):
            done = self.watch.sample(
                plan.reference_seconds + START_TIMEOUT_S, lambda: read_event(events, "done")
            )
        if not done:
            raise PerfmodeError("plain SB3 did not stop when its time was up")
        seconds = done["time"] - start["time"]
        cpu = done["cpu_seconds"] - start["cpu_seconds"]
        tally.add(done["timesteps"] - start["timesteps"], seconds, cpu, seconds)
        self._stop(child)

    # -- results --

    def result(self) -> dict[str, Any]:
        rows = {mode.value: self.tallies[mode].row() for mode in self.tallies}
        rows["plain_sb3"] = self.reference.row() if self.reference else None
        perf, foreign = rows["performance"], self.watch.foreign
        return {
            "rows": rows,
            "ratios": {
                "performance/quiet": ratios(perf, rows["quiet"]),
                "performance/plain_sb3": ratios(perf, rows["plain_sb3"]),
            },
            "machine": machine_info(self.device, self.watch.gpu.name),
            "foreign_cpu": {
                "mean_cores": round(statistics.fmean(foreign), 3) if foreign else None,
                "max_cores": round(max(foreign), 3) if foreign else None,
            },
            "performance_threads": self.threads,
            "config": self.request.config_name,
            "data": self.config.env.data,
            "plan": self.plan.as_dict(),
            "segments": self.segments,
            "elapsed_seconds": round(time.monotonic() - self.t0, 1),
            "notes": bench_notes(rows, self.plan.segment_seconds, self.threads),
            "plot": None,
        }
