"""A column of time stamps in one known layout, read as unix nanoseconds.

Most files write every stamp at the same width, so the column is read as a byte matrix
with numpy (a few hundred nanoseconds a row); rows of another width go through the layout's
regular expression one by one. Where the layout puts two small numbers before the year,
each row is read both ways (:class:`Parsed`) and the caller decides the order from the
whole file. The layout itself comes from :func:`perfmode.env.dates.infer_format`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from perfmode.env.dates import (
    DAY_FIRST,
    MONTH_FIRST,
    NAT,
    NS_PER_UNIT,
    STAMP_PATTERNS,
    TIME_ONLY,
    StampFormat,
    canonical,
    month_number,
)


@dataclass
class Parsed:
    """One chunk of a column: nanoseconds since 1970 (UTC where the file gave a zone), NAT
    where a row is not a valid stamp. ``by_order`` holds both readings for an ambiguous
    layout, else one entry under None; ``unreadable`` marks rows that match no reading."""

    by_order: dict[str | None, np.ndarray]
    unreadable: np.ndarray


STAMP_BYTES = 48
"""Width of the byte strings pandas hands over for a stamp column (numpy ``S48``): wide
enough for any layout here, and no Python string per row."""


def parse(text: np.ndarray, fmt: StampFormat) -> Parsed:
    """Read ``text`` with ``fmt``: a numpy bytes array (``b""`` for an empty cell), or an
    object array of str (NaN for an empty cell)."""
    n = len(text)
    fields: dict[str, np.ndarray] = {}
    raw = _as_bytes(text)
    ok = _fast_rows(raw, fmt, fields) if raw is not None else np.zeros(n, dtype=bool)
    slow = np.flatnonzero(~ok)
    if len(slow):
        for name in _FIELD_NAMES:
            fields.setdefault(name, np.zeros(n, dtype=np.int32))
        rx = TIME_ONLY if fmt.kind == "time" else STAMP_PATTERNS[fmt.kind]
        for i in slow:
            m = rx.match(text_at(text, i))
            if m is not None and _slow_row(m, fields, i):
                ok[i] = True
    tod = _time_of_day(fields, ok)
    if fmt.kind == "time":
        # A time of day: nanoseconds since midnight, added to the date column's.
        return Parsed({None: np.where(tod[1], tod[0], NAT)}, ~ok)
    y = fields.get("y")
    if fmt.ambiguous:
        a, b = fields.get("a"), fields.get("b")
        day_first = _compose(y, b, a, tod)
        month_first = _compose(y, a, b, tod)
        return Parsed({DAY_FIRST: day_first, MONTH_FIRST: month_first}, ~ok)
    return Parsed({None: _compose(y, fields.get("m"), fields.get("d"), tod)}, ~ok)


def text_at(text: np.ndarray, i: int) -> str:
    """Row ``i`` as text ("" for an empty cell)."""
    value = text[i]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


_FIELD_NAMES = ("y", "m", "d", "a", "b", "H", "M", "S", "f", "pm", "off")


def _as_bytes(text: np.ndarray) -> np.ndarray | None:
    if text.dtype.kind == "S":
        return text
    try:
        return np.array([v if isinstance(v, str) else "" for v in text], dtype=object).astype(
            f"S{STAMP_BYTES}"
        )
    except UnicodeEncodeError:
        return None  # not ASCII: every row takes the slow path


def _fast_rows(raw: np.ndarray, fmt: StampFormat, fields: dict[str, np.ndarray]) -> np.ndarray:
    """Rows written exactly like the template, read from a byte matrix into ``fields``."""
    n, size, width = len(raw), raw.dtype.itemsize, len(fmt.template)
    if not width or width > size or "mon" in fmt.spans or not n:
        return np.zeros(n, dtype=bool)
    mat = raw.view(np.uint8).reshape(n, size)
    ok = mat[:, width - 1] != 0
    if size > width:
        ok &= mat[:, width] == 0
    # One pass turns rows into columns: each character position is then a contiguous array.
    cols = np.ascontiguousarray(mat[:, :width].T)
    # Letters of a zone name ("GMT") must repeat like separators; groups vary per row.
    is_group = np.zeros(width, dtype=bool)
    for name, (s, e) in fmt.spans.items():
        is_group[s:e] = name != "z"
    for i in np.flatnonzero(~is_group):
        ok &= cols[i] == fmt.template[i]
    for name, (s, e) in fmt.spans.items():
        if name == "zs":
            ok &= (cols[s] == ord("+")) | (cols[s] == ord("-"))
        elif name == "ampm":
            first, second = cols[s] | 0x20, cols[s + 1] | 0x20  # lower case
            ok &= ((first == ord("a")) | (first == ord("p"))) & (second == ord("m"))
        elif name != "z":
            ok &= np.all(cols[s:e] - np.uint8(48) <= 9, axis=0)

    def number(s: int, e: int) -> np.ndarray:
        value = cols[s].astype(np.int32) - 48
        for k in range(s + 1, e):
            value *= 10
            value += cols[k]
            value -= 48
        return value

    for name, (s, e) in fmt.spans.items():
        if name in ("z", "zs", "zm", "ampm"):
            continue
        value = number(s, e)
        if name == "y" and e - s == 2:
            value = _century(value)
        elif name == "f":
            value *= 10 ** (9 - (e - s))
        fields["off" if name == "zh" else name] = value
    if "zh" in fmt.spans:
        minutes = number(*fmt.spans["zm"])
        sign = np.where(cols[fmt.spans["zs"][0]] == ord("-"), -1, 1).astype(np.int32)
        fields["off"] = sign * (fields["off"] * 3600 + minutes * 60)
    if "ampm" in fmt.spans:
        s, _ = fmt.spans["ampm"]
        fields["pm"] = np.where((cols[s] | 0x20) == ord("p"), 2, 1).astype(np.int32)
    return ok


def _century(yy: np.ndarray | int) -> np.ndarray | int:
    # strptime's %y rule: 69-99 are the 1900s, 00-68 the 2000s.
    return yy + np.where(np.asarray(yy) >= 69, 1900, 2000).astype(np.int32)


def _slow_row(m: re.Match[str], fields: dict[str, np.ndarray], i: int) -> bool:
    g = {canonical(k): v for k, v in m.groupdict().items() if v is not None}
    for name in ("y", "m", "d", "a", "b", "H", "M", "S"):
        if name in g:
            fields[name][i] = int(g[name])
    if "y" in g and len(g["y"]) == 2:
        fields["y"][i] = int(_century(int(g["y"])))
    if "mon" in g:
        month = month_number(g["mon"])
        if month is None:
            return False
        fields["m"][i] = month
    fields["f"][i] = int(g["f"][:9].ljust(9, "0")) if "f" in g else 0
    fields["pm"][i] = 0 if "ampm" not in g else 2 if g["ampm"][0] in "Pp" else 1
    offset = 0
    if "zh" in g:
        offset = int(g["zh"]) * 3600 + int(g["zm"]) * 60
        offset = -offset if g["zs"] == "-" else offset
    fields["off"][i] = offset
    return True


# Days since 1970 of the first of each month that datetime64[ns] can hold (1678-01 .. 2261-12).
_FIRST_YEAR, _YEARS = 1678, 584
_MONTH_STARTS = (
    (np.datetime64("1678-01", "M") + np.arange(_YEARS * 12 + 1)).astype("datetime64[D]")
).astype(np.int64)
_MONTH_DAYS = np.diff(_MONTH_STARTS)
_NS_DAY, _NS_SECOND = 86_400 * 10**9, 10**9


def _compose(
    y: np.ndarray | None,
    m: np.ndarray | None,
    d: np.ndarray | None,
    time_of_day: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Nanoseconds since 1970 of date and time; NAT where a row is no real date and time."""
    ns, valid = time_of_day
    if y is None or m is None or d is None:
        return np.full(len(ns), NAT, dtype=np.int64)
    month = (y - _FIRST_YEAR) * 12 + (m - 1)
    valid = valid & (month >= 0) & (month < _YEARS * 12) & (m >= 1) & (m <= 12) & (d >= 1)
    month = np.where(valid, month, 0)
    valid &= d <= _MONTH_DAYS[month]
    return np.where(valid, ns + (_MONTH_STARTS[month] + (d - 1)) * _NS_DAY, NAT)


def _time_of_day(fields: dict[str, np.ndarray], ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds since midnight (UTC where a zone was given), and which rows are valid."""
    valid = ok.copy()
    seconds = np.zeros(len(ok), dtype=np.int32)
    if "H" in fields:
        hour = fields["H"]
        if "pm" in fields:
            pm = fields["pm"]
            twelve = pm > 0
            valid &= ~twelve | ((hour >= 1) & (hour <= 12))
            hour = np.where(twelve, hour % 12 + np.where(pm == 2, 12, 0), hour)
        valid &= hour <= 23
        seconds += hour * 3600
    for name, scale in (("M", 60), ("S", 1)):
        if name in fields:
            valid &= fields[name] <= 59
            seconds += fields[name] * scale
    if "off" in fields:
        seconds -= fields["off"]
    ns = seconds.astype(np.int64) * _NS_SECOND
    if "f" in fields:
        ns += fields["f"]
    return ns, valid


def unix_times(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Unix times in s, ms, µs or ns, told apart per value by size (so a file that switched
    units, as exchange dumps did, still reads right): ns, valid, units seen.

    Each unit covers 1973 to 5138 on its own scale, so a value's size names its unit.
    """
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v) & (v >= 1e8)
    units: set[str] = set()
    ns = np.full(len(v), NAT, dtype=np.int64)
    bounds = [("s", 1e8, 1e11), ("ms", 1e11, 1e14), ("us", 1e14, 1e17), ("ns", 1e17, 1e19)]
    integral = np.asarray(values).dtype.kind in "iu"
    for unit, lo, hi in bounds:
        # datetime64[ns] ends in 2262 (9.2e18 ns).
        rows = valid & (v >= lo) & (v < hi) & (v * NS_PER_UNIT[unit] < 9.2e18)
        if rows.any():
            units.add(unit)
            if integral:
                ns[rows] = np.asarray(values)[rows].astype(np.int64) * NS_PER_UNIT[unit]
            else:
                ns[rows] = np.round(v[rows] * NS_PER_UNIT[unit]).astype(np.int64)
    valid &= ns != NAT
    return ns, valid, units
