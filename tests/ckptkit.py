"""Hostile and old checkpoints for tests: planted pickles and the pre-data-only format."""

from __future__ import annotations

import base64
import json
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class Plant:
    """Unpickling this creates ``marker``: the file appearing proves that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def planted_pickle(marker: Path) -> bytes:
    return pickle.dumps(Plant(marker))


def plant_in_zip_schedule(src: Path, dst: Path, marker: Path) -> None:
    """Copy an SB3 zip, hiding code in its serialized learning-rate schedule."""
    with zipfile.ZipFile(src) as z:
        members = {name: z.read(name) for name in z.namelist()}
    data = json.loads(members["data"])
    data["lr_schedule"][":serialized:"] = base64.b64encode(planted_pickle(marker)).decode()
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)


def write_old_checkpoint(folder: Path, model: Any, venv: Any, meta: dict[str, Any]) -> Path:
    """A checkpoint as perfmode wrote them before they became data only (pickles inside)."""
    path = folder / f"step_{model.num_timesteps:010d}"
    path.mkdir(parents=True)
    model.save(path / "model.zip")
    venv.save(str(path / "vecnormalize.pkl"))
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": None,
        "envs": venv.get_attr("np_random"),
    }
    (path / "rng.pkl").write_bytes(pickle.dumps(rng))
    (path / "meta.json").write_text(json.dumps({**meta, "timesteps": model.num_timesteps}))
    return path
