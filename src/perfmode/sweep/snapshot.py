"""A study that lives outside the home, as the page sees it: ``HOME/sweeps/NAME.study.json``.

The page reads the home's journals itself, but a study in a database (PostgreSQL across
machines) it does not open: it would need the URL and its password, and a page that
connects to whatever a file names is a page a file can steer. So the sweep process, which
holds the storage anyway, writes what ``--show --json`` would print to this file when it
starts, after each trial's result, every 10 s while it runs, and when it ends. The page reads it as data, bounded and
checked field by field: whatever the file holds, a row it cannot take is dropped or the
sweep is shown with one problem line, never a broken page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from perfmode.base.clock import utc_now
from perfmode.base.fsutil import atomic_write_bytes
from perfmode.base.home import Home
from perfmode.base.smallfile import read_small
from perfmode.sweep.storage import Where, check_sweep_name, journal_path

SUFFIX = ".study.json"
MAX_TRIALS = 500
"""The newest trials a snapshot (and the page) keeps."""
MAX_BYTES = 4 << 20
"""500 trials of a few hundred bytes each, with room to spare."""
_TEXT = 500
"""The longest string field kept (an error line, a home path)."""


def snapshot_path(home: Home, name: str) -> Path:
    return home.root / "sweeps" / f"{check_sweep_name(name)}{SUFFIX}"


def needs_snapshot(home: Home, w: Where, name: str) -> bool:
    """True when the page cannot read the study itself: it is not the home's journal."""
    return w.journal != journal_path(home, name)


def write_snapshot(home: Home, name: str, summary: dict[str, Any]) -> None:
    s = {**summary, "trials": summary["trials"][-MAX_TRIALS:], "as_of": _now()}
    path = snapshot_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(s, indent=1) + "\n").encode())


def read_snapshot(path: Path) -> dict[str, Any]:
    """The snapshot at ``path`` with only the fields the page draws, each of its type.

    Raises ``OSError`` (a file it may not read) or ``ValueError`` (not a snapshot)."""
    raw, _ = read_small(path, MAX_BYTES)
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
        raise ValueError("not a sweep snapshot")
    trials = [t for t in map(_trial, data["trials"][-MAX_TRIALS:]) if t is not None]
    counts = data.get("counts")
    best_so_far = data.get("best_so_far")
    return {
        "sweep": path.name.removesuffix(SUFFIX),
        "storage": _text(data.get("storage")) or "?",
        "direction": "maximize",
        "objective": _text(data.get("objective")) or "validation total return",
        "counts": {
            _text(k): v
            for k, v in (counts.items() if isinstance(counts, dict) else ())
            if _int(v) is not None and _text(k)
        },
        "best": _trial(data.get("best")),
        "best_so_far": [
            {"number": n, "best": b}
            for p in (best_so_far if isinstance(best_so_far, list) else ())
            if isinstance(p, dict)
            and (n := _int(p.get("number"))) is not None
            and (b := _num(p.get("best"))) is not None
        ][-MAX_TRIALS:],
        "trials": trials,
        "as_of": _text(data.get("as_of")),
    }


def _trial(t: Any) -> dict[str, Any] | None:
    if not isinstance(t, dict) or _int(t.get("number")) is None:
        return None
    last = t.get("last_report")
    params = t.get("params")
    return {
        "number": _int(t.get("number")),
        "state": _text(t.get("state")) or "?",
        "value": _num(t.get("value")),
        "last_report": {"report": _int(last.get("report")), "value": _num(last.get("value"))}
        if isinstance(last, dict) and _num(last.get("value")) is not None
        else None,
        "params": {
            _text(k): v
            for k, v in (params.items() if isinstance(params, dict) else ())
            if _text(k) and ((isinstance(v, str) and len(v) <= _TEXT) or _num(v) is not None)
        },
        "steps": _int(t.get("steps")),
        **{k: _text(t.get(k)) for k in ("run", "host", "home", "error", "started", "finished")},
        "retries": _int(t.get("retries")) or 0,
    }


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1 << 53 else None


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v if _int(v) is not None or (isinstance(v, float) and math.isfinite(v)) else None


def _text(v: Any) -> str | None:
    return v[:_TEXT] if isinstance(v, str) else None


def _now() -> str:
    return utc_now().isoformat(timespec="seconds")
