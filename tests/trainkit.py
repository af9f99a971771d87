"""Shared pieces for trainer tests: a tiny config and ways to wait on a real trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from perfmode.home import Home

TINY = {
    "env": {"window": 8, "episode_length": 64, "synthetic_length": 800},
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [8]},
    "training": {
        "total_timesteps": 1024,
        "checkpoint_freq": 256,
        "n_envs": 2,
        "keep_checkpoints": 3,
    },
}


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    data = json.loads(json.dumps(TINY))
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(data))
    return path


def start_trainer(home: Home, config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perfmode",
            "train",
            "--config",
            str(config),
            "--home",
            str(home.root),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def read_status(home: Home, run: str = "default") -> dict[str, Any]:
    try:
        return json.loads(home.status_file(run).read_text())
    except (OSError, ValueError):
        return {}


def log_text(home: Home, run: str = "default") -> str:
    try:
        return home.log_file(run).read_text(encoding="utf-8")
    except OSError:
        return ""


def metrics_rows(home: Home, run: str = "default") -> list[dict[str, str]]:
    import csv

    try:
        with open(home.metrics_file(run), newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []
