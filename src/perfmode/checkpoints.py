"""Checkpoints: one folder per save, written whole or not at all.

``runs/<run>/checkpoints/step_0000010000/`` holds

- ``model.zip``: SB3's save (policy, optimizer state, num_timesteps, _n_updates, schedules);
- ``vecnormalize.pkl``: VecNormalize statistics, when the run normalises;
- ``rng.pkl``: python, numpy, torch (and CUDA) RNG states and each env's generator, which
  SB3 does not keep (``load()`` re-seeds everything with the original seed);
- ``meta.json``: timesteps, mode, config and shapes; written last, so its presence marks
  a complete checkpoint even on file systems where a folder rename is not atomic.

Only our own checkpoints are ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import random
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfmode.errors import PerfmodeError
from perfmode.fsutil import atomic_write_json, fsync_dir
from perfmode.home import Home
from perfmode.settings import format_time, utc_now

log = logging.getLogger("perfmode.train")

MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
RNG_FILE = "rng.pkl"
META_FILE = "meta.json"
_NAME = re.compile(r"^step_(\d{10})$")


def checkpoint_path(folder: Path, timesteps: int) -> Path:
    """The one place a checkpoint's name is made: the timesteps are in it."""
    return folder / f"step_{timesteps:010d}"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    timesteps: int
    meta: dict[str, Any]

    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def vecnormalize(self) -> Path | None:
        p = self.path / VECNORM_FILE
        return p if p.exists() else None

    @property
    def rng(self) -> Path | None:
        p = self.path / RNG_FILE
        return p if p.exists() else None


def save_checkpoint(
    folder: Path,
    timesteps: int,
    model: Any,
    *,
    vecnormalize: Any | None,
    rng_state: dict[str, Any],
    meta: dict[str, Any],
) -> Checkpoint:
    folder.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(folder, timesteps)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model.save(tmp / MODEL_FILE)
        if vecnormalize is not None:
            vecnormalize.save(tmp / VECNORM_FILE)
        with open(tmp / RNG_FILE, "wb") as f:
            pickle.dump(rng_state, f)
        meta = {**meta, "timesteps": timesteps, "saved_at": format_time(utc_now())}
        atomic_write_json(tmp / META_FILE, meta)
        for name in (MODEL_FILE, VECNORM_FILE, RNG_FILE):
            _fsync_file(tmp / name)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(final, timesteps, meta)


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders, newest (most timesteps) first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def open_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint that passes cheap integrity checks, or PerfmodeError saying why not."""
    path = Path(path)
    m = _NAME.match(path.name)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as e:
        raise PerfmodeError(f"checkpoint {path} is incomplete (meta.json: {e})") from None
    try:
        with zipfile.ZipFile(path / MODEL_FILE) as z:
            bad = z.testzip()
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile) as e:
        raise PerfmodeError(f"checkpoint {path} is damaged (model.zip: {e})") from None
    if bad is not None or not {"data", "policy.pth"} <= names:
        raise PerfmodeError(f"checkpoint {path} is damaged (model.zip fails its CRC check)")
    timesteps = int(meta.get("timesteps", m.group(1) if m else 0))
    return Checkpoint(path, timesteps, meta)


def latest_checkpoint(folder: Path) -> Checkpoint | None:
    """The newest checkpoint that opens; a damaged newer one is skipped with a warning."""
    for path in list_checkpoints(folder):
        try:
            return open_checkpoint(path)
        except PerfmodeError as e:
            log.warning("⚠️  %s; falling back to the one before", e)
    return None


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` checkpoints and every final one; remove the rest."""
    removed = []
    for path in list_checkpoints(folder)[keep:]:
        with contextlib.suppress(OSError, ValueError):
            if json.loads((path / META_FILE).read_text()).get("final"):
                continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def resolve_checkpoint(home: Home, value: str, run: str | None = None) -> Path:
    """``latest`` (the newest valid checkpoint of the home, or of ``run``) or a path."""
    if value != "latest":
        return Path(value)
    runs = [run] if run else home.run_names()
    best: Checkpoint | None = None
    for name in runs:
        found = latest_checkpoint(home.checkpoints_dir(name))
        if found and (
            best is None or found.meta.get("saved_at", "") > best.meta.get("saved_at", "")
        ):
            best = found
    if best is None:
        raise PerfmodeError(
            f"no checkpoints in {home.runs_dir}; train first with `perfmode train --home {home.root}`"
        )
    return best.path


def capture_rng(venv: Any | None = None) -> dict[str, Any]:
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if venv is not None:
        state["envs"] = venv.get_attr("np_random")
    return state


def restore_rng(state: dict[str, Any], venv: Any | None = None) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different GPU count: keep the seeded ones
            torch.cuda.set_rng_state_all(state["cuda"])
    envs = state.get("envs")
    if venv is not None and envs:
        # n_envs may differ from the saved run's: env i continues env i's stream, extra
        # envs keep their seeded generators.
        for i, gen in enumerate(envs[: venv.num_envs]):
            venv.set_attr("np_random", gen, indices=[i])


def load_rng(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f)


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = dst.with_name(f".{dst.name}.{os.getpid()}.old")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
    fsync_dir(dst.parent)


def _fsync_file(path: Path) -> None:
    if not path.exists():
        return
    with open(path, "rb") as f:
        os.fsync(f.fileno())
