"""Time stamps as price files write them, read fast and never in the wrong day/month order.

A file's stamps share one layout, which :func:`infer_format` learns from the first readable
value. Most files write every stamp at the same width (``13.01.2017 00:00:00.000``), so a
column is read as a byte matrix with numpy, a few hundred nanoseconds a row; rows of another
width (``1/2/2017``) go through the same layout's regular expression one by one.

Where a layout puts two small numbers before the year, each row is read both ways and the
caller decides the order from the whole file (see :mod:`perfmode.env.stampparse`), never from
the first rows. This module learns a layout; ``stampparse`` reads a column in it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

NAT = np.iinfo(np.int64).min
"""numpy's NaT as an int64: an unreadable stamp."""

DAY_FIRST, MONTH_FIRST = "day-first", "month-first"
ORDERS = (DAY_FIRST, MONTH_FIRST)

NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for name in names
}

# Each date layout has its own group names (Python regexes cannot repeat one); _fields
# folds them into y, m, d, or a and b where the order is undecided.
_DATES = {
    "ymd": r"(?P<y>\d{4})(?P<s1>[-/.])(?P<m>\d{1,2})(?P=s1)(?P<d>\d{1,2})",
    "ymd8": r"(?P<y8>\d{4})(?P<m8>\d{2})(?P<d8>\d{2})",
    "aby": r"(?P<a>\d{1,2})(?P<s2>[-/.])(?P<b>\d{1,2})(?P=s2)(?P<y2>\d{4}|\d{2})",
    "mdy_name": r"(?P<mon>[^\W\d_]{3,9})\.?\s+(?P<d3>\d{1,2}),?\s+(?P<y3>\d{4})",
    "dmy_name": r"(?P<d4>\d{1,2})[-\s](?P<mon4>[^\W\d_]{3,9})\.?[-\s](?P<y4>\d{4}|\d{2})",
}
_TIME = (
    r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:\s?(?P<ampm>[AaPp][Mm]))?"
)
_ZONE = r"(?:\s?(?:(?P<z>Z|UTC|GMT)?(?:(?P<zs>[+-])(?P<zh>\d{2}):?(?P<zm>\d{2}))?))"
STAMP_PATTERNS = {
    kind: re.compile(rf"\s*{d}(?:(?:T|\s+|,\s*){_TIME})?{_ZONE}\s*$") for kind, d in _DATES.items()
}
TIME_ONLY = re.compile(rf"\s*{_TIME}{_ZONE}\s*$")

# How a group looks in a human format string ("DD.MM.YYYY hh:mm").
_SHOWN = {"y": "YYYY", "m": "MM", "d": "DD", "H": "hh", "M": "mm", "S": "ss"}


@dataclass(frozen=True)
class StampFormat:
    """One column's stamp layout, learnt from ``example`` (the first readable value)."""

    kind: str
    """A key of the date layouts, or "time" for a time-of-day column."""
    example: str
    template: bytes
    """``example`` as bytes: the characters every row of the fast path must repeat."""
    spans: dict[str, tuple[int, int]]
    """Group name -> (start, end) in ``template``."""

    @property
    def ambiguous(self) -> bool:
        """Two numbers before the year: day-first or month-first."""
        return self.kind == "aby"

    @property
    def has_zone(self) -> bool:
        return any(k in self.spans for k in ("z", "zs"))

    def shown(self, order: str | None = None) -> str:
        """The layout for people: ``DD.MM.YYYY hh:mm:ss.fff``."""
        text = self.example.strip()
        offset = len(self.example) - len(self.example.lstrip())
        names = dict(_SHOWN)
        if order is not None:
            names["a"], names["b"] = ("DD", "MM") if order == DAY_FIRST else ("MM", "DD")
        else:
            names["a"], names["b"] = "??", "??"
        parts, pos = [], 0
        for name, (s, e) in sorted(self.spans.items(), key=lambda kv: kv[1]):
            s, e = s - offset, e - offset
            if s < pos or s < 0:
                continue
            parts.append(text[pos:s])
            if name in ("y", "y2") and e - s == 2:
                parts.append("YY")
            elif name == "f":
                parts.append("f" * (e - s))
            elif name in ("zh", "zm", "zs"):
                parts.append({"zs": "±", "zh": "hh", "zm": "mm"}[name])
            elif name == "z":
                parts.append(text[s:e])
            elif name == "mon":
                parts.append("Mon")
            elif name == "ampm":
                parts.append("AM")
            else:
                parts.append(names.get(name[0] if name[0] in "ymd" else name, "?" * (e - s)))
            pos = e
        parts.append(text[pos:])
        return "".join(parts)


def infer_format(values: list[str], *, time_only: bool = False) -> StampFormat | None:
    """The layout of the first value that reads as a stamp (or a time of day), or None."""
    for value in values:
        if not value.strip():
            continue
        if time_only:
            m = TIME_ONLY.match(value)
            if m:
                return _format("time", value, m)
            continue
        for kind, rx in STAMP_PATTERNS.items():
            m = rx.match(value)
            if m and _plausible(kind, m):
                return _format(kind, value, m)
    return None


def looks_like_stamp(value: str) -> bool:
    return infer_format([value]) is not None


def looks_like_time_of_day(value: str) -> bool:
    return TIME_ONLY.match(value) is not None


def _plausible(kind: str, m: re.Match[str]) -> bool:
    if kind in ("mdy_name", "dmy_name"):
        return month_number(m.group("mon" if kind == "mdy_name" else "mon4")) is not None
    if kind == "ymd8":
        return 1 <= int(m.group("m8")) <= 12
    return True


def _format(kind: str, value: str, m: re.Match[str]) -> StampFormat:
    spans = {canonical(k): m.span(k) for k, v in m.groupdict().items() if v is not None}
    for sep in ("s1", "s2"):
        spans.pop(sep, None)
    try:
        template = value.encode("ascii")
    except UnicodeEncodeError:
        template = b""  # no fast path for this column
    return StampFormat(kind, value, template, spans)


def canonical(group: str) -> str:
    return {"y8": "y", "m8": "m", "d8": "d", "y2": "y", "d3": "d", "y3": "y", "d4": "d"}.get(
        group, {"mon4": "mon", "y4": "y"}.get(group, group)
    )


def month_number(name: str) -> int | None:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _MONTHS.get(plain.rstrip("."))
