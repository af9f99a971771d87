"""A trainer's start-up counts against a capped mode's share, in real trainer processes.

Starting ``perfmode train`` costs seconds of a whole core (Python, torch, SB3, the data,
the model) before the governor exists; a sweep pays it at every trial. Quiet's share is
what the run may take over its life, start-up included: the governor charges that CPU to
the duty cycle, which pays it back in short sleeps. A switch to performance forgives it and
still lands within a second.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import psutil

from perfmode.base.home import Home
from perfmode.settings.store import SettingsStore
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import (
    log_text,
    mode_lines,
    read_status,
    start_trainer,
    stop_trainer,
    write_config,
)

SHARE = 0.2
PAYBACK = re.compile(
    r"Start-up took ([\d.]+) s of CPU; at 20% of a core it is paid back by resting (\d+) s "
    r"before training goes on"
)


def _home(root: Path, mode: str) -> tuple[Home, Path]:
    home = Home(root / f"home-{mode}")
    home.root.mkdir(parents=True)
    SettingsStore(home.settings).set_mode("quiet", changed_by="cli")
    config = write_config(
        root / f"{mode}.yaml",
        training={
            "total_timesteps": 10_000_000,
            "checkpoint_freq": 10_000_000,
            "startup_counts": True,
        },
        modes={"quiet": {"cpu_share": SHARE}},
    )
    return home, config


def _cpu_over_life(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return (t.user + t.system) / (time.time() - proc.create_time())


def test_quiet_holds_a_trainer_to_its_share_from_its_start_and_a_switch_forgives_the_rest(
    tmp_path: Path,
) -> None:
    kept, switched = _home(tmp_path, "kept"), _home(tmp_path, "switched")
    procs = [start_trainer(home, config) for home, config in (kept, switched)]
    try:
        # The switched one: performance while it still pays back, applied within a second,
        # and it trains on at once instead of sleeping out the rest.
        home = switched[0]
        wait_for("it to train", lambda: read_status(home).get("timesteps"), proc=procs[1])
        found = PAYBACK.search(log_text(home))  # logged as the governor starts, before training
        assert found, log_text(home)
        logged_at = time.monotonic()
        payback_s = float(found[2])
        assert payback_s >= 5, found[0]
        # status and `perfmode status` say why it makes no progress yet.
        assert read_status(home)["payback_s"] > 1
        shown = run_perfmode("status", "--home", str(home.root)).stdout
        assert "paying back its start-up: resting" in shown, shown
        seen = len(mode_lines(home))
        SettingsStore(home.settings).set_mode("performance", changed_by="cli")
        written = home.settings.stat().st_mtime
        applied, mode = wait_for("the switch", lambda: mode_lines(home)[seen:], proc=procs[1])[-1]
        assert mode == "performance"
        assert applied.timestamp() - written < 1.5
        steps = read_status(home).get("timesteps", 0)
        wait_for(
            "a thousand steps in performance",
            lambda: read_status(home).get("timesteps", 0) >= steps + 1024,
            timeout=max(1.0, payback_s - (time.monotonic() - logged_at) - 1),
            proc=procs[1],
        )

        # The kept one: once it has trained two rollouts its whole life (start-up
        # included) used its share of a core, not the start-up's whole core and then some.
        home = kept[0]
        assert PAYBACK.search(log_text(home)), log_text(home)
        wait_for(
            "two rollouts in quiet",
            lambda: read_status(home).get("timesteps", 0) >= 256,
            proc=procs[0],
        )
        used = _cpu_over_life(psutil.Process(procs[0].pid))
        assert used <= SHARE * 1.5, f"{used:.2f} cores over its life at quiet's {SHARE}"
        wait_for("nothing owed", lambda: "payback_s" not in read_status(home), proc=procs[0])
    finally:
        for p in procs:
            stop_trainer(p)


def test_startup_counts_false_counts_training_only(tmp_path: Path) -> None:
    from perfmode.config.schema import load_config
    from perfmode.training.trainer import train

    home, config = _home(tmp_path, "off")
    cfg = load_config(config)
    cfg = cfg.with_overrides(total_timesteps=256)
    off = replace(cfg, training=replace(cfg.training, startup_counts=False))
    # As if this whole test session had been the start-up: were it charged, quiet would
    # rest for minutes before the first step.
    result = train(off, home, started_cpu=0.0)
    assert result.timesteps == 256
    assert "Start-up took" not in log_text(home)
