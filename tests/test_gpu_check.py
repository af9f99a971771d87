"""benchmarks/gpu_check.py is ready for a CUDA machine: its configs load, and without CUDA
it stops at once with one line that says what it needs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from perfmode.base.modes import Mode
from perfmode.config.schema import load_config
from perfmode.governor.governor import knobs_for

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("gib", [8, 80, 141])
def test_the_oom_config_overflows_its_cap_only_at_the_performance_batch(tmp_path, gib) -> None:
    gpu_check = load_script()
    path, fraction, width = gpu_check.oom_config(tmp_path, gib * 2**30)
    config = load_config(path)
    assert config.training.device == "cuda"
    perf = knobs_for(Mode.PERFORMANCE, config)
    assert perf.cuda_memory_fraction == fraction
    cap = fraction * gib * 2**30
    # ~32 bytes per sample per unit of the hidden layer: see oom_config
    assert 32 * perf.batch_size * width > 2 * cap
    assert 32 * config.ppo.batch_size * width < cap / 4


def test_the_guard_config_is_the_default_with_a_low_limit(tmp_path) -> None:
    config = load_config(load_script().guard_config(tmp_path, 38, 2))
    assert config.modes.performance.gpu_max_temp_c == 38
    assert config.modes.performance.gpu_cooldown_c == 2
    assert config.training.device == "cuda"
    assert config.ppo == load_config(None).ppo


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_without_cuda_it_says_so_in_one_line_and_exits_1() -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "sees no CUDA GPU" in proc.stderr
