"""The GPU side without a GPU: device choice, NVML absent, the guard, the GPU duty cycle.

What needs a real GPU (steps/s, busy share, OOM fallback, NVML on a card, the guard on a
hot card) is measured by benchmarks/gpu_check.py on a CUDA machine.
"""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.config.schema import Config
from perfmode.errors import UsageError
from perfmode.governor.duty import DutyCycle
from perfmode.governor.governor import Governor
from perfmode.governor.gpu import GpuHealth, GpuMonitor, guard_hot, status_lines
from perfmode.settings.store import SettingsStore
from perfmode.status.model import TrainerStatus
from perfmode.training.trainer import pick_device
from tests.conftest import run_perfmode

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

# -- --device ----------------------------------------------------------------------------


@no_cuda
def test_auto_picks_the_cpu_when_torch_sees_no_gpu() -> None:
    device, why = pick_device("auto")
    assert device == "cpu"
    assert "no CUDA GPU" in why


def test_auto_picks_the_cpu_for_an_mlp_even_with_a_gpu_and_says_how_to_force_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # torch offers no way to make a GPU appear: the availability check is stubbed.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA GeForce RTX 2070")
    device, why = pick_device("auto")
    assert device == "cpu"
    assert "MLP" in why and "--device cuda" in why and "RTX 2070" in why
    assert pick_device("cuda")[0] == "cuda"


@no_cuda
def test_device_cuda_without_a_gpu_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="--device cpu or auto"):
        pick_device("cuda")
    proc = run_perfmode("train", "--home", str(tmp_path), "--device", "cuda", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: --device cuda was asked for but torch sees no CUDA GPU")
    assert list(tmp_path.iterdir()) == []


# -- NVML --------------------------------------------------------------------------------


class FakeNvml:
    """pynvml's calls for one card; ``missing`` names calls the card does not support."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, temp: int = 64, missing: tuple[str, ...] = ()) -> None:
        self.temp, self.missing, self.shutdowns = temp, missing, 0

    def _maybe(self, name: str, value: Any) -> Any:
        if name in self.missing:
            raise self.NVMLError("Not Supported")
        return value

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return self._maybe("uuid", f"h-{uuid}")

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return self._maybe("index", f"h{index}")

    def nvmlDeviceGetName(self, h: str) -> bytes:
        return b"NVIDIA GeForce RTX 2070"  # older bindings return bytes

    def nvmlDeviceGetUtilizationRates(self, h: str) -> Any:
        return self._maybe("util", SimpleNamespace(gpu=97, memory=40))

    def nvmlDeviceGetMemoryInfo(self, h: str) -> Any:
        return self._maybe("mem", SimpleNamespace(used=5 * 2**30, total=8 * 2**30))

    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int:
        return self._maybe("temp", self.temp)

    def nvmlDeviceGetPowerUsage(self, h: str) -> int:
        return self._maybe("power", 182_345)


ALL_NULL = {
    "name": None,
    "util_pct": None,
    "mem_used_mib": None,
    "mem_total_mib": None,
    "temp_c": None,
    "power_w": None,
}


def test_without_an_nvidia_driver_every_gpu_field_is_null() -> None:
    # This machine has pynvml but no driver: NVML's own init fails, for real.
    health = GpuHealth()
    assert not health.available
    assert "NVML" in (health.problem or "")
    monitor = GpuMonitor(health, guard=True)
    assert monitor.poll(83, 8) is None
    assert {k: monitor.status().to_json()[k] for k in ALL_NULL} == ALL_NULL
    assert monitor.reading.metrics_row() == dict.fromkeys(monitor.reading.metrics_row(), "")


def test_without_nvidia_ml_py_every_gpu_field_is_null(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    health = GpuHealth()
    assert health.problem is not None and "nvidia-ml-py" in health.problem
    assert {k: v for k, v in vars(health.read()).items()} == ALL_NULL


def test_nvml_readings_in_units_and_a_field_the_card_lacks_is_null() -> None:
    nvml = FakeNvml(missing=("power", "uuid"))  # an unknown UUID falls back to the index
    health = GpuHealth("GPU-1234", index=1, nvml=nvml)
    r = health.read()
    assert (r.name, r.util_pct, r.mem_used_mib, r.mem_total_mib, r.temp_c, r.power_w) == (
        "NVIDIA GeForce RTX 2070",
        97,
        5120,
        8192,
        64,
        None,
    )
    assert r.metrics_row()["gpu_power_w"] == "" and r.metrics_row()["gpu_temp_c"] == 64
    health.close()
    assert nvml.shutdowns == 1


def test_nvml_that_sees_no_gpu_gives_nulls() -> None:
    health = GpuHealth(nvml=FakeNvml(missing=("index",)))
    assert health.problem == "NVML sees no GPU"
    assert health.read().temp_c is None


# -- the temperature guard -----------------------------------------------------------------


def test_guard_trips_above_the_limit_and_lets_go_after_cooling_by_the_cooldown() -> None:
    temps = [70, 83, 84, 86, 80, 76, 75.5, 75, 80, 83, 84]
    want = [False, False, True, True, True, True, True, False, False, False, True]
    hot, seen = False, []
    for t in temps:
        hot = guard_hot(hot, t, 83, 8)
        seen.append(hot)
    assert seen == want


def test_guard_without_a_limit_is_off_and_a_missing_reading_changes_nothing() -> None:
    assert guard_hot(True, 95, None, 8) is False
    assert guard_hot(False, 95, None, 8) is False
    assert guard_hot(True, None, 83, 8) is True
    assert guard_hot(False, None, 83, 8) is False


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_monitor_says_one_thing_each_way_and_reads_every_interval() -> None:
    nvml, clock = FakeNvml(temp=70), Clock()
    monitor = GpuMonitor(GpuHealth(nvml=nvml), guard=True, interval=2.0, clock=clock)
    messages = []
    for temp in (70, 86, 90, 80, 75, 74, 70):
        nvml.temp = temp
        messages.append(monitor.poll(83, 8))
        nvml.temp = 99  # a reading between two intervals is not taken
        clock.t += 1.0
        assert monitor.poll(83, 8) is None
        clock.t += 1.0
    assert messages[0] is None
    assert messages[1] == (
        "gpu 86 °C, above the 83 °C limit: quiet's knobs until the GPU is at 75 °C or below"
    )
    assert messages[2:4] == [None, None]
    assert messages[4] == "gpu cooled to 75 °C"
    assert messages[5:] == [None, None]


def test_monitor_of_a_cpu_run_reports_the_gpu_but_never_guards() -> None:
    monitor = GpuMonitor(GpuHealth(nvml=FakeNvml(temp=95)), guard=False)
    assert monitor.poll(83, 8) is None
    assert not monitor.hot
    assert monitor.status().temp_c == 95 and monitor.status().guard is None


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def train_log() -> Any:
    # The CLI's logging set-up stops perfmode's records at its own logger: listen there.
    logger, handler = logging.getLogger("perfmode.train"), Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_governor_runs_quiet_while_hot_with_one_line_each_way(home: Home, train_log) -> None:
    SettingsStore(home.settings).set_mode(Mode.PERFORMANCE, changed_by="cli")
    gov = Governor(SettingsStore(home.settings), Config())
    nvml, clock = FakeNvml(temp=70), Clock()
    gov.gpu = GpuMonitor(GpuHealth(nvml=nvml), guard=True, interval=0.0, clock=clock)

    def poll(temp: int) -> tuple[str, str | None, list[str]]:
        nvml.temp = temp
        train_log.clear()
        gov._next_poll = 0.0
        gov.tick()
        lines = [line for line in train_log if "Performance mode" in line]
        status = TrainerStatus()
        gov.report(status)
        assert status.mode.requested_mode == "performance"
        return status.mode.applied_mode, status.gpu.guard, lines

    assert poll(70) == ("performance", None, [])
    mode, guard, lines = poll(86)
    assert (mode, guard) == ("quiet", "gpu 86 °C")
    assert len(lines) == 1 and lines[0].startswith("⚙️ Performance mode: quiet (")
    assert lines[0].endswith(
        "— gpu 86 °C, above the 83 °C limit: quiet's knobs until the GPU is at 75 °C or below"
    )
    assert gov.duty.share == 0.5
    assert poll(80) == ("quiet", "gpu 86 °C", [])
    mode, guard, lines = poll(75)
    assert (mode, guard) == ("performance", None)
    assert len(lines) == 1 and lines[0].endswith("— gpu cooled to 75 °C")
    assert gov.duty.share == 1.0


def test_a_cpu_run_has_no_guard_and_null_gpu_fields_here(home: Home) -> None:
    gov = Governor(SettingsStore(home.settings), Config(), device="cpu")
    assert gov.gpu.guard is False
    status = TrainerStatus()
    gov.report(status)
    assert {k: status.gpu.to_json()[k] for k in ALL_NULL} == ALL_NULL
    assert status.gpu.guard is None


# -- the duty cycle on CUDA ----------------------------------------------------------------


class FakeCuda:
    """A wall clock, a CPU that queues kernels, and a GPU that runs them one after another.

    The launch queue holds at most ``depth`` seconds of work: past that a launch waits (as
    CUDA's does, and as SB3's copy of each step's actions back to the CPU does).
    """

    def __init__(self, depth: float = 0.005) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.gpu_busy = 0.0
        self.free_at = 0.0
        self.depth = depth
        self.events: list[str] = []

    def step(self, cpu_s: float = 0.0002, gpu_s: float = 0.001) -> None:
        self.wall += cpu_s
        self.cpu += cpu_s
        start = max(self.free_at, self.wall)
        self.free_at = start + gpu_s
        self.gpu_busy += gpu_s
        self.wall = max(self.wall, self.free_at - self.depth)  # waits asleep: no CPU time

    def settle(self) -> None:
        self.events.append("settle")
        self.wall = max(self.wall, self.free_at)

    def sleep(self, s: float) -> None:
        self.events.append("sleep")
        self.wall += s

    def run(self, duty: DutyCycle, seconds: float) -> float:
        """Train for ``seconds`` of wall time; the GPU's busy share."""
        while self.wall < seconds:
            self.step()
            duty.tick(self.wall)
        return self.gpu_busy / max(self.wall, self.free_at)


def test_on_cuda_quiet_holds_the_gpu_to_its_share() -> None:
    sim = FakeCuda()
    duty = DutyCycle(
        0.5, clock=lambda: sim.wall, wall=lambda: sim.wall, settle=sim.settle, sleep=sim.sleep
    )
    share = sim.run(duty, 60.0)
    assert share == pytest.approx(0.5, abs=0.03)
    # Every pause first waited for the slot's GPU work, so it counted that work.
    assert sim.events[:6] == ["settle", "sleep"] * 3
    assert sim.events.count("settle") == sim.events.count("sleep") > 200


def test_counting_cpu_time_on_cuda_would_not_hold_the_gpu_back() -> None:
    # What perfmode did before: the GPU's kernels are no CPU time, so quiet barely paused.
    sim = FakeCuda()
    duty = DutyCycle(0.5, clock=lambda: sim.cpu, wall=lambda: sim.wall, sleep=sim.sleep)
    assert sim.run(duty, 60.0) > 0.9


def test_on_a_cpu_quiet_still_counts_cpu_time_not_wall_time() -> None:
    # The CPU path is unchanged: 1 ms of CPU per step; when other programs hold the core
    # half of the time (wall runs at twice the CPU time) the scheduler already did the
    # holding back, and the duty cycle adds no sleep of its own.
    t = SimpleNamespace(cpu=0.0, wall=0.0, slept=0.0)

    def sleep(s: float) -> None:
        t.slept += s
        t.wall += s

    for contended, expected_sleep in ((False, 0.5), (True, 0.0)):
        t.cpu = t.wall = t.slept = 0.0
        duty = DutyCycle(0.5, clock=lambda: t.cpu, wall=lambda: t.wall, sleep=sleep)
        while t.wall < 30.0:
            t.cpu += 0.001
            t.wall += 0.002 if contended else 0.001
            duty.tick(t.wall)
        assert t.slept / t.wall == pytest.approx(expected_sleep, abs=0.03)


# -- perfmode status -------------------------------------------------------------------------


def test_status_shows_the_gpu_and_the_guard(cli, home: Home) -> None:
    from tests.test_runstatus import write_status

    gpu = {
        "name": "NVIDIA GeForce RTX 2070",
        "util_pct": 97,
        "mem_used_mib": 5222,
        "mem_total_mib": 8192,
        "temp_c": 86,
        "power_w": 182.3,
        "problem": None,
        "guard": "gpu 86 °C",
        "guard_limit_c": 83.0,
    }
    write_status(home, "default", device="cuda", applied_mode="quiet", gpu=gpu)
    human = cli("status").output
    assert (
        "GPU             NVIDIA GeForce RTX 2070: 97% busy, 5.1 / 8.0 GiB, 86 °C, 182 W\n" in human
    )
    assert "GPU guard       running quiet's knobs: gpu 86 °C (limit 83 °C)\n" in human
    report = json.loads(cli("status", "--json").stdout)
    assert report["trainer"]["gpu"] == gpu


def test_status_of_a_cpu_run_without_a_gpu_has_no_gpu_line() -> None:
    trainer = {"device": "cpu", "gpu": {**ALL_NULL, "problem": "NVML cannot start"}}
    assert status_lines(TrainerStatus.from_json(trainer)) == []
    assert status_lines(TrainerStatus.from_json({**trainer, "device": "cuda"})) == [
        ("GPU", "cuda, no readings (NVML cannot start)")
    ]
    # A status.json from before GPU fields
    assert status_lines(TrainerStatus.from_json({"device": "cpu"})) == []


# -- a whole run -----------------------------------------------------------------------------


@no_cuda
def test_a_run_without_a_gpu_says_why_cpu_and_writes_null_gpu_fields(home: Home, tmp_path) -> None:
    from tests.trainkit import log_text, metrics_rows, read_status, write_config

    config = write_config(tmp_path / "c.yaml")
    proc = run_perfmode("train", "--home", str(home.root), "--config", str(config), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "🖥️  Device: cpu (auto: torch sees no CUDA GPU)" in log_text(home)
    gpu = read_status(home)["gpu"]
    assert {k: gpu[k] for k in ALL_NULL} == ALL_NULL
    assert gpu["guard"] is None and "NVML" in gpu["problem"]
    rows = metrics_rows(home)
    assert rows and all(r["gpu_util_pct"] == r["gpu_temp_c"] == "" for r in rows)
    assert "GPU" not in run_perfmode("status", "--home", str(home.root)).stdout
