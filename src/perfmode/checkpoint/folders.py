"""Checkpoints: one folder per save, written whole or not at all, holding data only.

``runs/<run>/checkpoints/step_0000010000/`` holds the files of :mod:`perfmode.checkpoint.io`
(weights, optimizer state, counters, RNG states, episodes, normalisation) and ``meta.json``
(timesteps, mode, config, shapes), written last: its presence marks a complete checkpoint
even on file systems where a folder rename is not atomic. A folder is written as
``.step_*.tmp`` and renamed into place; one left by a kill is removed at the next start.

A checkpoint whose any part fails to read is skipped with a warning, and the one before it
is used. Folders written before checkpoints became data only (``model.zip``, ``rng.pkl``,
``vecnormalize.pkl``) are read only when the user trusts them (``--trust-checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfmode.base.clock import format_time, utc_now
from perfmode.base.fsutil import atomic_write_json, fsync_dir
from perfmode.base.home import Home
from perfmode.checkpoint.io import (
    POLICY_FILE,
    DamagedCheckpoint,
    TrainingState,
    read_state,
    write_state,
)
from perfmode.checkpoint.legacy import MODEL_FILE, check_zip, read_legacy
from perfmode.errors import PerfmodeError

log = logging.getLogger("perfmode.train")

META_FILE = "meta.json"
_NAME = re.compile(r"^step_(\d{10})$")
_STALE = re.compile(r"^\.step_\d{10}\.\d+\.(tmp|old)$")


def checkpoint_path(folder: Path, timesteps: int) -> Path:
    """The one place a checkpoint's name is made: the timesteps are in it."""
    return folder / f"step_{timesteps:010d}"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    timesteps: int
    meta: dict[str, Any]
    state: TrainingState | None
    """The training state; None for an old-format checkpoint that was not trusted."""

    @property
    def legacy(self) -> bool:
        """Written before checkpoints became data only: loading it unpickles."""
        return not (self.path / POLICY_FILE).exists()


def save_checkpoint(folder: Path, state: TrainingState, meta: dict[str, Any]) -> Checkpoint:
    """Write ``state`` as ``step_<timesteps>``; OSError (the folder left as it was) if it fails."""
    final = checkpoint_path(folder, state.num_timesteps)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_state(tmp, state)
        meta = {**meta, "timesteps": state.num_timesteps, "saved_at": format_time(utc_now())}
        atomic_write_json(tmp / META_FILE, meta)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(final, state.num_timesteps, meta, state)


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders, newest (most timesteps) first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def open_checkpoint(path: Path, *, trust: bool = False) -> Checkpoint:
    """The checkpoint at ``path``, every part read and checked; PerfmodeError saying why not.

    An old-format checkpoint comes back with ``state`` None unless ``trust`` is set.
    """
    path = Path(path)
    meta = read_meta(path)
    timesteps = meta["timesteps"]
    try:
        if (path / POLICY_FILE).exists():
            state: TrainingState | None = read_state(path)
        elif (path / MODEL_FILE).exists():
            check_zip(path / MODEL_FILE)
            state = read_legacy(path) if trust else None
        else:
            raise DamagedCheckpoint(f"it has neither {POLICY_FILE} nor {MODEL_FILE}")
    except DamagedCheckpoint as e:
        raise PerfmodeError(f"checkpoint {path} is damaged ({e})") from None
    if state is not None and state.num_timesteps != timesteps:
        raise PerfmodeError(
            f"checkpoint {path} is damaged (meta.json says {timesteps} steps, "
            f"its state {state.num_timesteps})"
        )
    return Checkpoint(path, timesteps, meta, state)


def read_meta(path: Path) -> dict[str, Any]:
    """meta.json as a dict whose ``timesteps`` is a count matching the folder's name."""
    try:
        meta = json.loads((path / META_FILE).read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise PerfmodeError(f"checkpoint {path} is incomplete (meta.json: {e})") from None
    if not isinstance(meta, dict):
        raise PerfmodeError(f"checkpoint {path} is damaged (meta.json is not a JSON object)")
    steps = meta.get("timesteps")
    named = _NAME.match(path.name)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise PerfmodeError(
            f"checkpoint {path} is damaged (meta.json timesteps is {steps!r}, not a count)"
        )
    if named and int(named.group(1)) != steps:
        raise PerfmodeError(
            f"checkpoint {path} is damaged (meta.json says {steps} steps, its name otherwise)"
        )
    for key, kind in (("config", dict), ("observation_shape", list), ("saved_at", str)):
        if key in meta and not isinstance(meta[key], kind):
            raise PerfmodeError(f"checkpoint {path} is damaged (meta.json {key} is malformed)")
    return meta


def valid_checkpoints(folder: Path, *, trust: bool = False) -> Iterator[Checkpoint]:
    """Checkpoints that open, newest first; each damaged one is skipped with a warning."""
    for path in list_checkpoints(folder):
        try:
            ckpt = open_checkpoint(path, trust=trust)
        except PerfmodeError as e:
            log.warning("⚠️  %s; falling back to the one before", e)
            continue
        yield ckpt


def latest_checkpoint(folder: Path, *, trust: bool = False) -> Checkpoint | None:
    """The newest checkpoint that opens; a damaged newer one is skipped with a warning."""
    return next(valid_checkpoints(folder, trust=trust), None)


def untrusted_refusal(ckpt: Checkpoint) -> PerfmodeError:
    """For ``perfmode train``: the newest checkpoint is an old one, of pickles."""
    return PerfmodeError(
        f"{ckpt.path} was saved by an older perfmode as pickles, which run code when loaded; "
        "if you made it yourself, add --trust-checkpoint to `perfmode train`, or start over "
        "with --fresh"
    )


def remove_stale_writes(folder: Path) -> list[Path]:
    """Remove ``.step_*.tmp``/``.old`` folders a killed trainer left; call under the run lock."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _STALE.match(p.name)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` checkpoints and every final one; remove the rest."""
    removed = []
    for path in list_checkpoints(folder)[keep:]:
        with contextlib.suppress(OSError, ValueError, RecursionError):
            meta = json.loads((path / META_FILE).read_bytes())
            if isinstance(meta, dict) and meta.get("final") is True:
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


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = dst.with_name(f".{dst.name}.{os.getpid()}.old")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
    fsync_dir(dst.parent)
