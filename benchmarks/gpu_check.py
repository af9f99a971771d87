"""Every check that needs a CUDA GPU, in one run of under 5 minutes, each with its figures.

1. device: what ``--device auto`` picks on this machine, and the line it logs;
2. steps/s on the CPU (``--device auto``) vs CUDA (``--device cuda``), default config,
   performance mode, one trainer after the other;
3. quiet vs performance on CUDA (configs/train_config_gpu_optimized.yaml), alternating in
   one trainer: GPU busy share (NVML utilisation, sampled here 5 times a second), steps/s
   and CPU cores per mode (quiet's must not show a CPU core spinning while it waits);
4. the CUDA OOM fallback: a performance batch that cannot fit a low memory cap, halved
   until it does (``oom_events``, ``batch_cap``), and the run goes on to its target;
5. NVML: every GPU field, read here and by the trainer (status.json, metrics.csv);
6. the temperature guard: ``gpu_max_temp_c`` set 3 °C above the GPU's temperature, the GPU
   warmed by a matrix-multiply load from this script until the guard trips, then left to
   cool until the trainer returns to performance.

Run on a machine with an NVIDIA GPU, a CUDA build of torch and nvidia-ml-py:

    .venv/bin/python benchmarks/gpu_check.py [--seconds 15]

It exits 1 with one line when torch sees no CUDA GPU. ``--seconds`` is the measuring time
of each steps/s run and of each mode in section 3: the whole takes about 6 × that, plus
about 10 s to start each of the 6 trainers, plus the guard's heating and cooling (at most
45 s each), so about 3 minutes (188 s on an H100), at most 5.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _trainer import Trainer, set_mode
from bench_modes import segments

from perfmode.governor.gpu import GpuHealth, cuda_uuid
from perfmode.training.trainer import pick_device

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
LONG = ("--timesteps", "1000000000")
FIGURES: list[tuple[str, str]] = []


def figure(what: str, value: str) -> None:
    FIGURES.append((what, value))
    print(f"  {what:<46}{value}", flush=True)


def metrics(home: Path) -> list[dict[str, str]]:
    try:
        with open(home / "runs" / "default" / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def median(rows: list[dict[str, str]], column: str) -> float:
    values = [float(r[column]) for r in rows if r.get(column) not in (None, "")]
    return statistics.median(values) if values else float("nan")


def write_yaml(path: Path, data: dict[str, Any], base: Path | None = None) -> Path:
    merged = yaml.safe_load(base.read_text()) if base else {}
    for section, values in data.items():
        merged.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict):
                merged[section].setdefault(key, {}).update(value)
            else:
                merged[section][key] = value
    path.write_text(yaml.safe_dump(merged))
    return path


@contextlib.contextmanager
def trainer(home: Path, *args: str) -> Iterator[Trainer]:
    t = Trainer(home, *args)
    try:
        t.wait_line("Performance mode:", timeout=120)
        yield t
    finally:
        t.stop()


def line_with(t: Trainer, needle: str) -> str:
    return next((line for _, line in t.lines if needle in line), "(no such line)")


# -- the checks ------------------------------------------------------------------------------


def check_device() -> None:
    print("1. --device auto", flush=True)
    device, why = pick_device("auto")
    figure("auto picks", f"{device}: {why.split('(', 1)[-1].rstrip(')')}")


def check_steps_per_second(seconds: float) -> None:
    print("2. steps/s, default config, performance mode", flush=True)
    speeds = {}
    for device in ("auto", "cuda"):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            set_mode(home, "performance")
            with trainer(home, "--device", device, *LONG) as t:
                time.sleep(seconds)
                used = line_with(t, "Device:").split("Device: ")[-1][:60]
            rows = metrics(home)[2:]  # the first updates pay for start-up
        speeds[device] = median(rows, "fps")
        figure(f"--device {device} ({used.split(' ')[0]})", f"{speeds[device]:,.0f} steps/s")
    figure("CUDA / CPU", f"{speeds['cuda'] / speeds['auto']:.2f}x")


class UtilSampler:
    """NVML's GPU utilisation, sampled in a thread, kept with the time of each sample."""

    def __init__(self, health: GpuHealth, every: float = 0.2) -> None:
        self.health, self.every = health, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            util = self.health.read().util_pct
            if util is not None:
                self.samples.append((time.monotonic(), util))

    def mean(self, t0: float, t1: float) -> float:
        values = [u for t, u in self.samples if t0 <= t < t1]
        return statistics.fmean(values) if values else float("nan")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def check_quiet_vs_performance(seconds: float, health: GpuHealth) -> None:
    print("3. quiet vs performance on CUDA (train_config_gpu_optimized.yaml)", flush=True)
    config = CONFIGS / "train_config_gpu_optimized.yaml"
    windows: dict[str, list[tuple[float, float]]] = {"quiet": [], "performance": []}
    sampler = UtilSampler(health)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        set_mode(home, "quiet")
        try:
            with trainer(home, "--config", str(config), "--device", "cuda", *LONG):
                time.sleep(5)  # warm-up
                for mode in ("performance", "quiet") * 2:
                    set_mode(home, mode)
                    t0 = time.monotonic()
                    time.sleep(seconds)
                    windows[mode].append((t0 + 2.0, time.monotonic()))  # 2 s to settle
        finally:
            sampler.stop()
        segs = segments(metrics(home))
    kept: dict[str, list[dict[str, str]]] = {"quiet": [], "performance": []}
    for seg in segs[1:]:
        kept[seg[0]["mode"]].extend(seg[1:])  # seg[0] straddles the switch
    print(f"  {'mode':<14}{'GPU busy':>10}{'steps/s':>10}{'CPU cores':>11}{'updates':>9}")
    busy = {}
    for mode in ("quiet", "performance"):
        busy[mode] = statistics.fmean(sampler.mean(a, b) for a, b in windows[mode])
        print(
            f"  {mode:<14}{busy[mode]:>9.0f}%{median(kept[mode], 'fps'):>10,.0f}"
            f"{median(kept[mode], 'cpu_cores'):>11.2f}{len(kept[mode]):>9}"
        )
    figure(
        "GPU busy share quiet / performance", f"{busy['quiet']:.0f}% / {busy['performance']:.0f}%"
    )
    figure(
        "steps/s quiet / performance",
        f"{median(kept['quiet'], 'fps'):,.0f} / {median(kept['performance'], 'fps'):,.0f}",
    )
    figure("CPU cores in quiet (share 0.5)", f"{median(kept['quiet'], 'cpu_cores'):.2f}")


def oom_config(tmp: Path, total: int) -> tuple[Path, float, int]:
    """A config whose performance batch cannot fit a cap of ~2 GiB (at least 5 %) of
    ``total`` bytes but whose base batch can: the path, the cap's fraction, the net's width."""
    fraction = max(0.05, round(2 * 2**30 / total, 3))
    rollout = 2048 * 16
    # One hidden layer: activations ~32 bytes per sample per unit (forward and backward, two
    # networks), so the whole-rollout batch needs ~4× the cap and the base batch ~1/8 of it.
    width = int(4 * fraction * total / (32 * rollout))
    config = write_yaml(
        tmp / "oom.yaml",
        {
            "ppo": {"n_steps": 2048, "batch_size": 1024, "n_epochs": 1, "net_arch": [width]},
            "training": {"n_envs": 16, "checkpoint_freq": 10_000_000, "device": "cuda"},
            "modes": {
                "performance": {
                    "batch_size_multiplier": 32,
                    "cuda_memory_fraction": fraction,
                    "gpu_max_temp_c": None,
                },
            },
        },
    )
    return config, fraction, width


def guard_config(tmp: Path, limit: int, cooldown: int) -> Path:
    return write_yaml(
        tmp / "guard.yaml",
        {
            "training": {"device": "cuda"},
            "modes": {"performance": {"gpu_max_temp_c": limit, "gpu_cooldown_c": cooldown}},
        },
        base=CONFIGS / "train_config.yaml",
    )


def check_oom(tmp: Path) -> None:
    print("4. CUDA OOM fallback under a low memory cap", flush=True)
    total = torch.cuda.get_device_properties(0).total_memory
    config, fraction, width = oom_config(tmp, total)
    cap, rollout = fraction * total, 2048 * 16
    home = tmp / "oom"
    home.mkdir()
    set_mode(home, "performance")
    t = Trainer(home, "--config", str(config), "--timesteps", str(2 * rollout))
    try:
        code: int | str = t.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = "none: still running after 120 s"
    finally:
        t.stop()
    status = t.status()
    events = status.get("oom_events") or []
    figure(
        "memory cap",
        f"{fraction:g} × {total / 2**30:.0f} GiB = {cap / 2**30:.1f} GiB, net [{width}]",
    )
    figure(
        "OOM events (failed → new batch)",
        ", ".join(f"{e['failed_batch']}→{e['new_batch']}" for e in events) or "none",
    )
    figure(
        "run went on",
        f"exit {code}, {status.get('timesteps', 0):,} / {2 * rollout:,} steps, "
        f"batch_cap {status.get('batch_cap')}",
    )


def check_nvml(health: GpuHealth, tmp: Path) -> None:
    print("5. NVML fields", flush=True)
    r = health.read()
    figure("read here", f"{r}" if health.available else f"none: {health.problem}")
    home = tmp / "nvml"
    home.mkdir()
    with trainer(home, "--device", "cuda", *LONG) as t:
        time.sleep(8)
        gpu = t.status().get("gpu")
    figure("trainer's status.json gpu", str(gpu))
    row = (metrics(home) or [{}])[-1]
    figure("trainer's metrics.csv", str({k: v for k, v in row.items() if k.startswith("gpu_")}))


def check_guard(health: GpuHealth, tmp: Path) -> None:
    print("6. temperature guard", flush=True)
    start = health.read().temp_c
    if start is None:
        figure("guard", f"not checked: NVML gives no temperature ({health.problem})")
        return
    limit, cooldown = start + 3, 2
    config = guard_config(tmp, limit, cooldown)
    home = tmp / "guard"
    home.mkdir()
    set_mode(home, "performance")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    with trainer(home, "--config", str(config), *LONG) as t:
        t0, hottest = time.monotonic(), start
        tripped = None
        while time.monotonic() - t0 < 45 and tripped is None:
            for _ in range(20):
                a = (a @ a).clamp_(-1, 1)  # heat: the card flat out
            torch.cuda.synchronize()
            hottest = max(hottest, health.read().temp_c or 0)
            with contextlib.suppress(TimeoutError):
                tripped = t.wait_line("— gpu ", timeout=0.01)
        del a
        torch.cuda.empty_cache()
        figure("idle → limit, cooldown", f"{start} °C → {limit} °C, {cooldown} °C")
        if tripped is None:
            figure("tripped", f"no: the GPU reached {hottest} °C in 45 s of matmuls")
            return
        index, at = tripped
        figure("tripped after", f"{at - t0:.1f} s: {t.lines[index][1]}")
        time.sleep(1.0)
        status = t.status()
        figure(
            "status while tripped",
            f"requested {status.get('requested_mode')}, applied {status.get('applied_mode')}, "
            f"guard {(status.get('gpu') or {}).get('guard')!r}",
        )
        try:
            _, back = t.wait_line("gpu cooled to", after=index + 1, timeout=45)
            figure("cooled after", f"{back - at:.1f} s: {line_with(t, 'gpu cooled to')}")
        except TimeoutError:
            figure("cooled", f"not within 45 s (now {health.read().temp_c} °C)")


SECTIONS = ("device", "speed", "modes", "oom", "nvml", "guard")


def run_section(name: str, check: Any, *args: Any) -> None:
    """One section; a failure is printed and recorded, and the remaining sections still run,
    so that one run on a GPU machine says everything it can."""
    try:
        check(*args)
    except Exception as e:  # reported as a figure; the other checks go on
        traceback.print_exc()
        figure(f"{name}: FAILED", f"{type(e).__name__}: {str(e).splitlines()[-1][:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per run")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit(
            f"gpu_check: torch {torch.__version__} sees no CUDA GPU (built for CUDA "
            f"{torch.version.cuda}); run it on a machine with an NVIDIA GPU and a CUDA build "
            "of torch"
        )
    began = time.monotonic()
    health = GpuHealth(cuda_uuid())
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"NVML {'ok' if health.available else health.problem}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        checks: dict[str, tuple[Any, ...]] = {
            "device": (check_device,),
            "speed": (check_steps_per_second, args.seconds),
            "modes": (check_quiet_vs_performance, args.seconds, health),
            "oom": (check_oom, Path(tmp)),
            "nvml": (check_nvml, health, Path(tmp)),
            "guard": (check_guard, health, Path(tmp)),
        }
        for name in SECTIONS:
            if name in args.only:
                run_section(name, *checks[name])
    print(f"\nall figures ({time.monotonic() - began:.0f} s):")
    for what, value in FIGURES:
        print(f"  {what:<46}{value}")


if __name__ == "__main__":
    main()
