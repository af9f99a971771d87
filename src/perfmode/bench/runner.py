"""One bench, top to bottom: :meth:`Bench.run` starts the trainer and plain SB3, warms up,
alternates the modes, measures plain SB3, and stops everything whatever happens."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from perfmode.base.clock import parse_time
from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.bench.figures import Tally, machine_info, ratio, ratios
from perfmode.bench.plan import (
    APPLY_TIMEOUT_S,
    HUGE_TIMESTEPS,
    SAMPLE_S,
    START_TIMEOUT_S,
    BenchRequest,
    Plan,
    Progress,
)
from perfmode.bench.processes import Child, read_event, tree_cpu_seconds, tree_rss
from perfmode.config.schema import Config, config_to_mapping
from perfmode.errors import PerfmodeError
from perfmode.governor.gpu import GpuHealth
from perfmode.governor.load import LoadSensor
from perfmode.settings.store import SettingsStore
from perfmode.status.file import read_status
from perfmode.status.model import TrainerStatus
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
        self.progress = progress
        self.load = LoadSensor(interval=1.0)
        self.foreign: list[float] = []
        self.tallies = {Mode.QUIET: Tally(), Mode.PERFORMANCE: Tally()}
        self.reference: Tally | None = None
        self.segments: list[dict[str, Any]] = []
        self.children: list[Child] = []
        self.live: list[Child] = []
        self.device = "cpu"
        # The card's name for the machine line; its use is sampled only while the run
        # trains on CUDA (on the CPU another program's GPU work would be counted as ours).
        self.gpu = GpuHealth()
        self.threads: dict[str, Any] | None = None
        self.t0_wall = time.time()
        self.t0 = time.monotonic()
        self._phase = ("starting", 0.0, 0.0, self.t0)
        self._measuring: tuple[Tally, Child] | None = None

    # -- the run, top to bottom --

    def run(self) -> dict[str, Any]:
        try:
            trainer = self._spawn("trainer", self._trainer_cmd(), "trainer.log")
            # Plain SB3 imports and builds its model meanwhile, then waits for its turn.
            reference = self._spawn_reference() if self.plan.reference else None
            self._warm_up()
            self._alternate(trainer)
            self._stop(trainer)  # the reference gets the machine to itself
            if reference is not None:
                self._measure_reference(reference)
        finally:
            for child in self.children:
                child.stop()
            self.gpu.close()
        return self.result()

    def _trainer_cmd(self) -> list[str]:
        self.store.set_mode(Mode.QUIET, changed_by="bench")
        return train_command(
            self.root, "--fresh", "--timesteps", str(HUGE_TIMESTEPS), *self._config_args()
        )

    def _spawn_reference(self) -> Child:
        cmd = [sys.executable, "-m", "perfmode.bench.reference", "--events", str(self.events)]
        cmd += ["--seconds", f"{self.plan.reference_seconds:.3f}", *self._config_args()]
        return self._spawn("plain SB3 reference", cmd, "reference.log", stdin=True)

    def _config_args(self) -> list[str]:
        # One file for both children: the same env, data and hyperparameters, by construction.
        path = self.root / "config.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump(config_to_mapping(self.config)), encoding="utf-8")
        return ["--config", str(path)]

    def _warm_up(self) -> None:
        """Start-up, the first update, and performance mode's thread trial: not measured."""
        self._set_phase("starting (not measured)", 0.0)

        def started() -> bool:
            ready = not self.plan.reference or read_event(self.events, "ready") is not None
            return ready and self._metrics_rows() >= 1

        if not self._sample(START_TIMEOUT_S, started):
            raise PerfmodeError(
                f"the trainer or plain SB3 did not finish starting within {START_TIMEOUT_S:g} s; "
                "is the config very large for this machine?"
            )
        self.device = self._status().run.device or self.device
        if self.device != "cuda":
            self.gpu.close()
        # Only now: the trial must not take plain SB3's start-up for another program's load.
        self.store.set_mode(Mode.PERFORMANCE, changed_by="bench")
        self._set_phase("warming up: performance mode picks its threads (not measured)", 0.0)
        rows = self._metrics_rows()
        self._sample(self.plan.trial_seconds, lambda: self._threads_settled(rows))

    def _threads_settled(self, rows_before: int) -> bool:
        status = self._status()
        choice = status.threads.choice
        rows = self._metrics_rows() - rows_before
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
            self._set_phase(f"{mode.value} {i + 1}/{plan.segments}", plan.segment_seconds)

            def applied(mode: Mode = mode) -> bool:
                return self._status().mode.applied_mode == mode.value

            if not self._sample(APPLY_TIMEOUT_S, applied):
                raise PerfmodeError(
                    f"the trainer did not apply {mode.value} mode within {APPLY_TIMEOUT_S:g} s"
                )
            self._sample(start + plan.settle_seconds - time.monotonic())
            window = self._measure_window(trainer, mode, start + plan.segment_seconds)
            self.segments.append(
                {
                    "mode": mode.value,
                    "start_s": round(start_wall - self.t0_wall, 2),
                    "end_s": round(time.time() - self.t0_wall, 2),
                    **window,
                }
            )
        threads = self._status().threads
        self.threads = threads.to_json() if threads.choice else None

    def _measure_window(self, trainer: Child, mode: Mode, until: float) -> dict[str, Any]:
        """From now to ``until``: the trainer's steps from its heartbeats, its CPU and memory."""
        tally = self.tallies[mode]
        wall0, t0, cpu0 = time.time(), time.monotonic(), tree_cpu_seconds(trainer.root)
        beats: list[tuple[float, int]] = []  # (heartbeat, timesteps) written in the window

        def beat() -> bool:
            status = self._status()
            at, steps = parse_time(status.run.heartbeat), status.progress.timesteps
            if at is None or steps is None or status.mode.applied_mode != mode:
                return False
            if at.timestamp() >= wall0 and (not beats or beats[-1][0] != at.timestamp()):
                beats.append((at.timestamp(), steps))
            return False

        self._measuring = (tally, trainer)
        self._sample(max(until - t0, 1.0), beat)
        self._measuring = None
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
        self._set_phase(f"stopping the {child.name}", 0.0)
        self.live.remove(child)
        child.stop()

    def _measure_reference(self, child: Child) -> None:
        plan, events = self.plan, self.events
        self._set_phase("plain SB3: first rollout and update (not measured)", 0.0)
        child.send("go")
        start = self._sample(START_TIMEOUT_S, lambda: read_event(events, "measuring"))
        if not start:
            raise PerfmodeError(
                f"plain SB3 did not finish its first update within {START_TIMEOUT_S:g} s"
            )
        self._set_phase("plain SB3", plan.reference_seconds)
        self.reference = tally = Tally()
        self._measuring = (tally, child)
        done = self._sample(
            plan.reference_seconds + START_TIMEOUT_S, lambda: read_event(events, "done")
        )
        self._measuring = None
        if not done:
            raise PerfmodeError("plain SB3 did not stop when its time was up")
        seconds = done["time"] - start["time"]
        cpu = done["cpu_seconds"] - start["cpu_seconds"]
        tally.add(done["timesteps"] - start["timesteps"], seconds, cpu, seconds)
        self._stop(child)

    # -- sampling --

    def _spawn(self, name: str, cmd: list[str], log: str, *, stdin: bool = False) -> Child:
        child = Child(name, cmd, self.root / log, stdin=stdin)
        self.children.append(child)
        self.live.append(child)
        return child

    def _sample(self, seconds: float, until: Callable[[], Any] | None = None) -> Any:
        """Sample every SAMPLE_S for ``seconds`` or until ``until()`` is truthy (its value);
        a child that exits meanwhile is an error."""
        deadline = time.monotonic() + seconds
        while True:
            if until is not None and (value := until()):
                return value
            for child in self.live:
                child.check_alive()
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

    def _set_phase(self, what: str, length: float) -> None:
        _, base, previous, _ = self._phase
        self._phase = (what, base + previous, length, time.monotonic())
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        what, base, length, since = self._phase
        done = base + min(length, time.monotonic() - since)
        self.progress(what, done, self.plan.mode_seconds + self.plan.reference_seconds)

    def _status(self) -> TrainerStatus:
        return read_status(self.home.status_file()) or TrainerStatus()

    def _metrics_rows(self) -> int:
        try:
            with open(self.home.metrics_file(), "rb") as f:
                return max(0, sum(1 for _ in f) - 1)
        except OSError:
            return 0

    # -- results --

    def result(self) -> dict[str, Any]:
        rows = {mode.value: self.tallies[mode].row() for mode in self.tallies}
        rows["plain_sb3"] = self.reference.row() if self.reference else None
        perf = rows["performance"]
        return {
            "rows": rows,
            "ratios": {
                "performance/quiet": ratios(perf, rows["quiet"]),
                "performance/plain_sb3": ratios(perf, rows["plain_sb3"]),
            },
            "machine": machine_info(self.device, self.gpu.name),
            "foreign_cpu": {
                "mean_cores": round(statistics.fmean(self.foreign), 3) if self.foreign else None,
                "max_cores": round(max(self.foreign), 3) if self.foreign else None,
            },
            "performance_threads": self.threads,
            "config": self.request.config_name,
            "data": self.config.env.data,
            "plan": self.plan.as_dict(),
            "segments": self.segments,
            "elapsed_seconds": round(time.monotonic() - self.t0, 1),
            "notes": self._notes(rows),
            "plot": None,
        }

    def _notes(self, rows: dict[str, Any]) -> list[str]:
        notes = [
            f"no progress of {mode} mode was seen in its {self.plan.segment_seconds:.1f}-s "
            "segments (this config's rollouts or updates take longer); give it more --minutes"
            for mode in (Mode.QUIET.value, Mode.PERFORMANCE.value)
            if not rows[mode]["steps_per_s"]
        ]
        threads = self.threads or {}
        if threads.get("choice") == "trying":
            notes.append(
                "performance mode was still trying thread counts during the bench; its "
                "figures include the trial (give it more --minutes)"
            )
        return notes
