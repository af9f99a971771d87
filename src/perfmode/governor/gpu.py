"""The GPU side of perfmode: health readings, the temperature guard, waiting without spinning.

- :class:`GpuHealth` reads one NVIDIA GPU through NVML (``nvidia-ml-py``, import name
  ``pynvml``): utilisation, memory, temperature, power. No library, no driver, no GPU, or a
  field the card does not report: those fields are ``None``, and nothing fails.
- :func:`guard_hot` is the temperature guard's whole decision, a pure function of readings;
  :class:`GpuMonitor` samples the GPU every couple of seconds and keeps the guard's state
  for the governor.
- :func:`blocking_sync` waits for the GPU's queued work with CUDA's blocking synchronisation
  (the CPU thread sleeps instead of spinning); the governor's duty cycle calls it at the end
  of each slot on CUDA, so that it counts the time the GPU was busy, not the CPU's.
- :func:`status_lines` formats a trainer's ``gpu`` status for ``perfmode status``.

Neither torch nor pynvml is imported at module level: ``perfmode status`` imports this module
for its lines and must start fast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from perfmode.status.model import GPU_METRICS_COLUMNS as METRICS_COLUMNS
from perfmode.status.model import GpuStatus, TrainerStatus

SAMPLE_INTERVAL_S = 2.0
"""How often the trainer reads the GPU (NVML's own sample period is 1/6 s to 1 s)."""


@dataclass(frozen=True)
class GpuReading:
    """One sample of the GPU; every field None when NVML could not tell."""

    name: str | None = None
    util_pct: int | None = None
    """Percent of the last sample period in which a kernel ran (any process's)."""
    mem_used_mib: int | None = None
    mem_total_mib: int | None = None
    temp_c: int | None = None
    power_w: float | None = None

    def metrics_row(self) -> dict[str, Any]:
        values = (self.util_pct, self.mem_used_mib, self.mem_total_mib, self.temp_c, self.power_w)
        return {c: "" if v is None else v for c, v in zip(METRICS_COLUMNS, values, strict=True)}


NO_READING = GpuReading()


class GpuHealth:
    """NVML readings of one GPU: the one with ``uuid`` (torch's device), else ``index``.

    ``nvml`` is the pynvml module (a test can hand in another); None imports it. When the
    library is missing, NVML cannot start (no driver) or finds no such GPU, :attr:`problem`
    says why and every reading is :data:`NO_READING`.
    """

    def __init__(self, uuid: str | None = None, index: int = 0, nvml: Any = None) -> None:
        self.problem: str | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self.name: str | None = None
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
        except ImportError:
            self.problem = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return
        except Exception as e:  # pynvml.NVMLError and its many subclasses; OSError
            self.problem = f"NVML cannot start: {e}"
            return
        handle = None
        if uuid:
            handle = self._call(nvml.nvmlDeviceGetHandleByUUID, uuid)
        if handle is None:
            handle = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            self.problem = "NVML sees no GPU"
            self._shutdown(nvml)
            return
        self._nvml, self._handle = nvml, handle
        name = self._call(nvml.nvmlDeviceGetName, handle)
        self.name = name.decode() if isinstance(name, bytes) else name

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self) -> GpuReading:
        if self._handle is None:
            return NO_READING
        nvml, h = self._nvml, self._handle
        util = self._call(nvml.nvmlDeviceGetUtilizationRates, h)
        mem = self._call(nvml.nvmlDeviceGetMemoryInfo, h)
        power_mw = self._call(nvml.nvmlDeviceGetPowerUsage, h)
        return GpuReading(
            name=self.name,
            util_pct=None if util is None else int(util.gpu),
            mem_used_mib=None if mem is None else int(mem.used) // 2**20,
            mem_total_mib=None if mem is None else int(mem.total) // 2**20,
            temp_c=self._call(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
            power_w=None if power_mw is None else round(power_mw / 1000, 1),
        )

    def close(self) -> None:
        if self._nvml is not None:
            self._shutdown(self._nvml)
            self._nvml = self._handle = None

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        # A card may not report a field (NVMLError_NotSupported), a driver may be reloaded
        # under a long run: that field is None this time, the others still count.
        try:
            return fn(*args)
        except Exception:
            return None

    @staticmethod
    def _shutdown(nvml: Any) -> None:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def guard_hot(hot: bool, temp_c: float | None, max_c: float | None, cooldown_c: float) -> bool:
    """Whether the temperature guard holds the trainer in quiet after this reading.

    It trips above ``max_c`` and lets go once the GPU is at ``max_c - cooldown_c`` or below
    (hysteresis: no flapping around the limit). ``max_c`` None (the mode has no guard) lets
    go at once; a missing reading changes nothing, since it cannot show the GPU cooled.
    """
    if max_c is None:
        return False
    if temp_c is None:
        return hot
    if hot:
        return temp_c > max_c - cooldown_c
    return temp_c > max_c


class GpuMonitor:
    """The trainer's GPU: health every :data:`SAMPLE_INTERVAL_S`, and the guard's state.

    The guard only acts when the trainer runs on CUDA: a GPU heated by something else
    is no reason to slow a CPU run.
    """

    def __init__(
        self,
        health: GpuHealth,
        *,
        guard: bool,
        interval: float = SAMPLE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self.guard = guard and health.available
        self.interval = interval
        self.clock = clock
        self.reading = NO_READING
        self.hot = False
        self.reason: str | None = None
        """'gpu 86 °C' while the guard holds the trainer in quiet, else None."""
        self.limit: float | None = None
        """The requested mode's gpu_max_temp_c while the guard watches, else None."""
        self._next = clock()  # the first poll reads at once: a run may start on a hot GPU

    def poll(self, max_c: float | None, cooldown_c: float) -> str | None:
        """A new reading when due; a log message when the guard trips or lets go, else None.

        ``max_c`` and ``cooldown_c`` are the requested mode's profile's.
        """
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.interval
        self.reading = self.health.read()
        if not self.guard:
            return None
        temp, was = self.reading.temp_c, self.hot
        self.limit = max_c
        self.hot = guard_hot(was, temp, max_c, cooldown_c)
        if self.hot and not was and max_c is not None:
            self.reason = f"gpu {temp} °C"
            return (
                f"{self.reason}, above the {max_c:g} °C limit: quiet's knobs until the GPU "
                f"is at {max_c - cooldown_c:g} °C or below"
            )
        if was and not self.hot:
            self.reason = None
            if max_c is not None:  # it cooled (rather than: the mode asked for has no guard)
                return f"gpu cooled to {temp} °C"
        return None

    def status(self) -> GpuStatus:
        return GpuStatus(
            **asdict(self.reading),
            problem=self.health.problem,
            guard=self.reason,
            guard_limit_c=self.limit,
        )


def blocking_sync() -> Callable[[], None]:
    """A function that waits until the GPU has run all the work queued so far, asleep.

    An event created with ``blocking=True`` is a ``cudaEventBlockingSync`` event: the
    calling thread blocks in the driver until the GPU reaches it, where
    ``torch.cuda.synchronize()`` (CUDA's default scheduling) would spin a CPU core at 100 %
    for the whole wait on a machine with more cores than GPUs.
    """
    import torch

    event = torch.cuda.Event(blocking=True)

    def wait() -> None:
        event.record()
        event.synchronize()

    return wait


def cuda_uuid() -> str | None:
    """NVML's name for torch's current CUDA device (CUDA_VISIBLE_DEVICES renumbers them)."""
    import torch

    try:
        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    except Exception:
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def monitor_for(device: str) -> GpuMonitor:
    """The trainer's monitor: the CUDA device it trains on (guarded), else the first GPU."""
    if device == "cuda":
        import torch

        health = GpuHealth(cuda_uuid(), index=torch.cuda.current_device())
    else:
        health = GpuHealth()
    return GpuMonitor(health, guard=device == "cuda")


def status_lines(trainer: TrainerStatus) -> list[tuple[str, str]]:
    """``perfmode status`` lines for a trainer's ``gpu`` status (none without a GPU).

    status.json is a file anyone can edit: the model read it defensively (a value of the
    wrong type is None); what is left is only kept to a printable size here.
    """
    gpu = trainer.gpu
    on_cuda = trainer.run.device == "cuda"
    name = gpu.name
    if name is None:
        if not on_cuda:
            return []
        return [("GPU", f"cuda, no readings ({gpu.problem or 'NVML gave none'})")]
    util, used_mib, total_mib, temp, power, limit = (
        _finite(v)
        for v in (
            gpu.util_pct,
            gpu.mem_used_mib,
            gpu.mem_total_mib,
            gpu.temp_c,
            gpu.power_w,
            gpu.guard_limit_c,
        )
    )
    parts = []
    if util is not None:
        parts.append(f"{util:g}% busy")
    if used_mib is not None and total_mib:
        parts.append(f"{used_mib / 1024:.1f} / {total_mib / 1024:.1f} GiB")
    if temp is not None:
        parts.append(f"{temp:g} °C")
    if power is not None:
        parts.append(f"{power:.0f} W")
    used = "" if on_cuda else " (this run trains on the CPU)"
    lines = [("GPU", f"{name[:80]}: {', '.join(parts) or 'no readings'}{used}")]
    if gpu.guard:
        at = f" (limit {limit:g} °C)" if limit is not None else ""
        what = gpu.guard[:120]
        lines.append(("GPU guard", f"running quiet's knobs: {what}{at}"))
    return lines


def _finite(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e12 and v == v:
        return float(v)
    return None
