"""A checkpoint's files read as bounded data: nothing blocks, inflates or grows the reader.

Whatever sits at a checkpoint's paths (a FIFO, a symlink to ``/dev/zero``, a zip member that
inflates a thousandfold, a JSON document nested thousands deep), a read ends at once with
:class:`~perfmode.checkpoint.io.DamagedCheckpoint` naming the file:

- every file is opened as :mod:`perfmode.base.smallfile` opens one: regular files only,
  ``O_NONBLOCK`` and ``fstat``, at most ``limit`` bytes;
- a zip member's size is taken from its header and checked against its cap before a byte
  of it is inflated; an ``.npy`` member's shape and dtype come from its own header and are
  checked before its data is read (the data is then read to exactly that length);
- a ``.pth`` file is mapped (``torch.load(mmap=True, weights_only=True)``), not read, after
  its zip directory shows only stored members whose sizes add up to no more than the file:
  torch never inflates anything, and a tensor is only a view until it is checked.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.base.platform import open_fd_path
from perfmode.base.smallfile import RefusedFile, human_bytes, open_regular, read_fd
from perfmode.checkpoint.errors import DamagedCheckpoint

MAX_JSON_BYTES = 16 << 20
"""state.json and meta.json: counters, RNG states and a config are a few hundred KB."""
MAX_JSON_DEPTH = 32
"""A config is four levels deep, state.json five: anything far deeper is not one of them."""
MAX_MEMBERS = 4096
# numpy dtypes an array of a checkpoint may have: bools, integers, floats; no objects.
_ARRAY_KINDS = "biuf"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def _refused(path: Path | str, e: OSError) -> DamagedCheckpoint:
    if isinstance(e, RefusedFile):
        return DamagedCheckpoint(str(e))
    if isinstance(e, FileNotFoundError):
        return DamagedCheckpoint(f"{path} is missing")
    return DamagedCheckpoint(f"{path}: cannot read it ({e.strerror or e})")


def read_bytes(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them."""
    try:
        fd = open_regular(path, limit)
    except OSError as e:
        raise _refused(path, e) from None
    try:
        return read_fd(fd, path, limit)
    except OSError as e:
        raise _refused(path, e) from None
    finally:
        os.close(fd)


def parse_json(data: bytes, where: Path | str) -> Any:
    """JSON from ``data``, refusing one nested deeper than :data:`MAX_JSON_DEPTH` before parsing."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", data)):
        depth += 1 if m.group() in b"[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            raise DamagedCheckpoint(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise DamagedCheckpoint(f"{where}: not valid JSON ({str(e)[:120]})") from None


def read_json_object(path: Path, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    doc = parse_json(read_bytes(path, limit), path)
    if not isinstance(doc, dict):
        raise DamagedCheckpoint(f"{path}: not a JSON object")
    return doc


# -- .npz --------------------------------------------------------------------------------


def read_npz(path: Path, member_limit: int) -> dict[str, np.ndarray]:
    """The arrays of ``path``, each at most ``member_limit`` bytes, read without pickles."""
    # A state holds about fifteen arrays, none larger than ``member_limit``.
    data = read_bytes(path, 64 * (member_limit + 4096))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DamagedCheckpoint(f"{path}: {len(infos):,} members, not a checkpoint's")
            return {_array_name(path, i): _read_member(z, i, path, member_limit) for i in infos}
    except DamagedCheckpoint:
        raise
    # zipfile, zlib and numpy's header parser report a bad file with many types.
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        ValueError,
        OSError,
        NotImplementedError,
    ) as e:
        raise DamagedCheckpoint(f"{path}: not a readable .npz ({str(e)[:160]})") from None


def _array_name(path: Path, info: zipfile.ZipInfo) -> str:
    if not info.filename.endswith(".npy"):
        raise DamagedCheckpoint(f"{path}: member {info.filename[:60]!r} is not an array")
    return info.filename[:-4]


def _too_big(path: Path, name: str, size: int, limit: int) -> DamagedCheckpoint:
    return DamagedCheckpoint(
        f"{path}: {name} would take {human_bytes(size)}, more than the {human_bytes(limit)} "
        "the arrays of this model need"
    )


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int) -> np.ndarray:
    # The header's size first: zipfile inflates a member to that size and no further.
    if info.file_size > limit + 4096:
        raise _too_big(path, info.filename, info.file_size, limit)
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{info.filename}: .npy format {version} is not one numpy writes")
        if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
            raise DamagedCheckpoint(
                f"{path}: not a readable .npz ({info.filename} holds {dtype}, not numbers)"
            )
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > limit:
            raise _too_big(path, info.filename, nbytes, limit)
        raw = f.read(nbytes + 1)  # one more: a member longer than its header says is refused
    if len(raw) != nbytes:
        raise DamagedCheckpoint(
            f"{path}: {info.filename} holds {len(raw):,} bytes of data, its header says {nbytes:,}"
        )
    flat = np.frombuffer(raw, dtype=dtype).copy()
    return flat.reshape(shape, order="F" if fortran else "C")


# -- .pth --------------------------------------------------------------------------------


def load_torch_file(path: Path, limit: int) -> Any:
    """``torch.load`` of the regular file at ``path`` (at most ``limit`` bytes), mapped."""
    try:
        fd = open_regular(path, limit)
    except OSError as e:
        raise _refused(path, e) from None
    try:
        size = os.fstat(fd).st_size
        with os.fdopen(os.dup(fd), "rb") as f:
            _check_torch_zip(f, size, path)
        # The descriptor's own path: what is mapped is the file just checked, whatever the
        # name points at by now.
        proc = open_fd_path(fd)
        return _torch_load(str(proc or path), path, mmap=True)
    finally:
        os.close(fd)


def load_torch_bytes(data: bytes, where: str) -> Any:
    """``torch.load`` of bytes already read (a member of a zip)."""
    _check_torch_zip(io.BytesIO(data), len(data), where)
    return _torch_load(io.BytesIO(data), where, mmap=False)


def _check_torch_zip(f: Any, size: int, where: Path | str) -> None:
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise DamagedCheckpoint(f"{where}: not a torch state dict ({str(e)[:120]})") from None
    if len(infos) > MAX_MEMBERS:
        raise DamagedCheckpoint(f"{where}: {len(infos):,} records, not a state dict's")
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        raise DamagedCheckpoint(f"{where}: holds compressed records (torch.save writes none)")
    if sum(i.file_size for i in infos) > size:
        raise DamagedCheckpoint(f"{where}: its records claim more bytes than the file holds")


def _torch_load(f: Any, where: Path | str, *, mmap: bool) -> Any:
    import torch

    try:
        return torch.load(f, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # torch reports a bad file with many types
        text = str(e).strip()
        first = text.splitlines()[0][:160] if text else type(e).__name__
        if "weights_only" in text or "Unsupported global" in text:
            first = "it holds more than weights, and loading it would run code"
        raise DamagedCheckpoint(f"{where}: not a torch state dict ({first})") from None
