"""How a price file is laid out, learnt from its first 64 KiB before pandas reads it.

Exports differ in encoding, separator, decimal mark, header names (``Adj Close``,
``<CLOSE>``, ``Gmt time``, ``Price``, ``Schluss``) or no header at all (MetaTrader 4's
history, exchange kline dumps). :func:`sniff` settles all of that once, so the bulk read is a
single fast pandas pass over only the columns that matter.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from perfmode.base.smallfile import kind_of
from perfmode.base.text import cut
from perfmode.env import dates
from perfmode.errors import UsageError

SAMPLE_BYTES = 64 * 1024
# A sample grows (to at most this) until it holds a few whole lines, however wide they are.
MAX_SAMPLE_BYTES = 16 << 20
_WHOLE_LINES = 4
_SAMPLE_LINES = 200

# Normalised header (lower-case ASCII letters and digits) -> role, best first. Adjusted
# closes win over raw ones: they include splits and dividends, which is what a holder earned.
CLOSE_NAMES = (
    "adjclose",
    "adjustedclose",
    "close",
    "closeprice",
    "closingprice",
    "last",
    "lastprice",
    "price",
    "schluss",
    "schlusskurs",
    "cierre",
    "chiusura",
    "cloture",
    "dernier",
    "ultimo",
    "zamkniecie",
)
TIME_NAMES = (
    "datetime",
    "timestamp",
    "timestamputc",
    "datetimeutc",
    "gmttime",
    "timeutc",
    "utctime",
    "localtime",
    "date",
    "time",
    "opentime",
    "datum",
    "data",
    "fecha",
    "day",
)
# A date column and a separate time-of-day column (MetaTrader's <DATE> <TIME>, Stooq).
_DATE_AND_TIME = (("date", "time"), ("datum", "zeit"), ("fecha", "hora"), ("data", "czas"))
SYMBOL_NAMES = ("symbol", "ticker", "instrument", "pair", "asset", "name", "isin", "code")
_OPEN_HIGH_LOW = ("open", "high", "low")

_NUMBER = re.compile(r"^[+-]?(?:\d[\d.,' \u00a0]*)?\d$|^[+-]?\d*[.,]\d+$")


@dataclass(frozen=True)
class Layout:
    """Everything needed to read the file with pandas and to describe it."""

    encoding: str
    separator: str
    decimal: str
    thousands: str | None
    header: bool
    skiprows: int
    """Lines before the header (or the first row): blank lines, Excel's ``sep=;``."""
    columns: tuple[str, ...]
    """Every column's name, for messages: the header's, or "column 3" without one."""
    time_cols: tuple[int, ...]
    """The stamp column, or a date column and a time-of-day column."""
    close_col: int
    symbol_col: int | None
    kind: str
    """The layout in words ("header line", "MetaTrader 4 history, no header", ...)."""
    sample: list[list[str]] = field(compare=False, repr=False)
    """The first rows after the header, split into fields."""

    def first_line(self) -> int:
        """The line number of the first data row."""
        return self.skiprows + (2 if self.header else 1)

    def sample_values(self, col: int) -> list[str]:
        return [row[col] for row in self.sample if len(row) > col]


def sniff(path: Path) -> Layout:
    raw, whole = _head(path)
    _refuse_compressed(raw, path)
    encoding = _encoding(raw, path)
    text = raw.decode(encoding, errors="replace")
    lines = text.splitlines()
    if not whole and len(lines) > 1:
        lines = lines[:-1]  # the last line is probably cut
    skip = 0
    separator = None
    while skip < len(lines) and not lines[skip].strip():
        skip += 1
    if skip < len(lines) and re.fullmatch(r"\s*sep=.\s*", lines[skip], re.IGNORECASE):
        # Excel's hint line for the separator.
        separator = lines[skip].strip()[4]
        skip += 1
    body = [line for line in lines[skip : skip + _SAMPLE_LINES + 1] if line.strip()]
    if not body:
        raise UsageError(f"{path}: the file is empty")
    separator = separator or _separator(body)
    try:
        rows = list(csv.reader(body, delimiter=separator, skipinitialspace=True))
    except csv.Error as e:
        raise UsageError(f"{path}: cannot read it as CSV: {e}") from None
    header = not _is_data_row(rows[0])
    sample = rows[1:] if header else rows
    if header:
        names = tuple(name.strip() for name in rows[0])
        kind = "header line"
        time_cols, close_col, symbol_col = _roles_by_name(names, sample, path)
        names = tuple(name or f"column {i + 1}" for i, name in enumerate(names))
    else:
        names, kind, time_cols, close_col = _roles_by_position(rows, path)
        symbol_col = None
    decimal, thousands = _number_format(
        [v for c in _numeric_cols(names, close_col) for v in _values(sample, c)], path
    )
    return Layout(
        encoding=encoding,
        separator=separator,
        decimal=decimal,
        thousands=thousands,
        header=header,
        skiprows=skip,
        columns=names,
        time_cols=time_cols,
        close_col=close_col,
        symbol_col=symbol_col,
        kind=kind,
        sample=sample,
    )


def key(name: str) -> str:
    """A header name as matched: ASCII lower-case letters and digits (``<CLOSE>`` -> close)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def _head(path: Path) -> tuple[bytes, bool]:
    """The file's first bytes, enough for a few whole lines (up to ``MAX_SAMPLE_BYTES``), and
    whether that is the whole file."""
    if not path.exists():
        raise UsageError(f"data file {path} does not exist (pass a CSV path or 'synthetic')")
    if path.is_dir():
        raise UsageError(f"data file {path} is a folder, not a CSV file")
    try:
        # A FIFO or a device would block the read or never end it: regular files only, opened
        # without blocking so that one swapped in after the look is caught by fstat.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise UsageError(
                    f"data file {path} is {kind_of(mode)}, not a regular file; "
                    "give a CSV file on disk"
                )
            raw = f.read(SAMPLE_BYTES)
            # Lines longer than the sample (10,000 columns) need more to see a whole row.
            while raw.count(b"\n") < _WHOLE_LINES and len(raw) < MAX_SAMPLE_BYTES:
                more = f.read(len(raw))
                if not more:
                    break
                raw += more
            whole = not f.read(1)
    except OSError as e:
        raise UsageError(f"data file {path} cannot be read: {e.strerror or e}") from None
    if not raw.strip():
        raise UsageError(f"{path}: the file is empty")
    return raw, whole


# Magic bytes of the compressed files price sites hand out, and the command that opens each.
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"PK\x03\x04", "zip", "unzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"(\xb5/\xfd", "zstd", "unzstd"),
)


def _refuse_compressed(raw: bytes, path: Path) -> None:
    for magic, name, tool in _COMPRESSED:
        if raw.startswith(magic):
            raise UsageError(
                f"{path}: the file is {name}-compressed; decompress it first "
                f"(e.g. `{tool} {path.name}`) and give the CSV file"
            )


def _encoding(raw: bytes, path: Path) -> str:
    not_text = UsageError(f"{path}: not a text CSV file (cannot decode it as UTF-8)")
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # MetaTrader 5 writes its exports in UTF-16.
        text = raw.decode("utf-16", errors="replace")
        if "\x00" in text or text.count("\ufffd") > 2:
            raise not_text
        return "utf-16"
    if b"\x00" in raw:
        raise not_text
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 4:  # not just a character cut at the sample's end
            # Old Windows exports (a header with Eröffnung or Clôture): Latin-1 reads any byte.
            return "latin-1"
    return "utf-8"


def _separator(lines: list[str]) -> str:
    """The candidate that splits every sample line into the same number (>1) of fields.

    Tab and semicolon go first: a file split by them may hold decimal commas.
    """
    for sep in ("\t", ";", "|", ","):
        counts = set(_field_counts(lines, sep))
        if len(counts) == 1 and counts.pop() > 1:
            return sep
    for sep in ("\t", ";", "|", ","):
        # Ragged lines (a trailing separator on some): the first that splits every line.
        if min(_field_counts(lines, sep)) > 1:
            return sep
    return ","


def _field_counts(lines: list[str], sep: str) -> list[int]:
    try:
        return [len(row) for row in csv.reader(lines, delimiter=sep)]
    except csv.Error:  # a field over csv's limit: a wide line split by another separator
        return [0]


def _is_data_row(row: list[str]) -> bool:
    first = row[0].strip() if row else ""
    return bool(first) and (dates.looks_like_stamp(first) or first.replace(".", "").isdigit())


def _roles_by_name(
    names: tuple[str, ...], sample: list[list[str]], path: Path
) -> tuple[tuple[int, ...], int, int | None]:
    keys: dict[str, int] = {}
    for i, name in enumerate(names):
        keys.setdefault(key(name), i)
    close = next((keys[k] for k in CLOSE_NAMES if k in keys), None)
    if close is None:
        raise UsageError(
            f"{path}: no close column (expected Close, Adj Close or Price; found {_listed(names)})"
        )
    time_cols: tuple[int, ...] | None = None
    for date_key, time_key in _DATE_AND_TIME:
        if date_key in keys and time_key in keys:
            values = _values(sample, keys[time_key])
            if values and all(dates.looks_like_time_of_day(v) for v in values[:20] if v):
                time_cols = (keys[date_key], keys[time_key])
                break
    if time_cols is None:
        found = next((keys[k] for k in TIME_NAMES if k in keys), None)
        if found is None and (not names[0] or names[0].startswith("Unnamed")):
            # pandas' to_csv() writes an unnamed DatetimeIndex under an empty header.
            found = 0
        if found is None:
            raise UsageError(
                f"{path}: no date/time column (expected Date, Time, Datetime or Timestamp; "
                f"found {_listed(names)})"
            )
        time_cols = (found,)
    symbol = next((keys[k] for k in SYMBOL_NAMES if k in keys), None)
    return time_cols, close, symbol


def _roles_by_position(
    rows: list[list[str]], path: Path
) -> tuple[tuple[str, ...], str, tuple[int, ...], int]:
    """A file without a header: MetaTrader 4 history or an exchange's klines."""
    first = [v.strip() for v in rows[0]]
    n = len(first)
    generic = [f"column {i + 1}" for i in range(n)]
    if first[0].isdigit() and len(first[0]) >= 9:
        if n < 5:
            raise _no_header(path, first)
        names = ["open time", "open", "high", "low", "close", "volume"][:n] + generic[6:]
        return (
            tuple(names),
            "exchange klines, no header (open time, open, high, low, close, ...)",
            (0,),
            4,
        )
    if n >= 6 and dates.looks_like_time_of_day(first[1]):
        names = ["date", "time", "open", "high", "low", "close", "volume"][:n] + generic[7:]
        kind = "MetaTrader 4 history, no header (date, time, open, high, low, close, volume)"
        return tuple(names), kind, (0, 1), 5
    if n >= 5:
        names = ["time", "open", "high", "low", "close", "volume"][:n] + generic[6:]
        return tuple(names), "no header (time, open, high, low, close, ...)", (0,), 4
    if n == 2:
        return ("time", "close"), "no header (time, close)", (0,), 1
    raise _no_header(path, first)


def _no_header(path: Path, first: list[str]) -> UsageError:
    return UsageError(
        f"{path}: the first line ({_listed(first)}) is not a header, and its columns are not "
        "a known layout (time, open, high, low, close, ...); add a header line such as "
        "Date,Open,High,Low,Close"
    )


def _listed(names: tuple[str, ...] | list[str], shown: int = 12) -> str:
    """Column names for a message: the first few, each cut, and how many more."""
    text = ", ".join(cut(n, 40) for n in names[:shown])
    return text + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def _values(sample: list[list[str]], col: int) -> list[str]:
    return [row[col].strip() for row in sample if len(row) > col and row[col].strip()]


def _numeric_cols(names: tuple[str, ...], close: int) -> list[int]:
    cols = [close]
    cols += [i for i, n in enumerate(names) if key(n) in _OPEN_HIGH_LOW and i != close]
    return cols


def _number_format(values: list[str], path: Path) -> tuple[str, str | None]:
    """The decimal mark and thousands separator that the sample's prices agree on."""
    decimal: dict[str, str] = {}
    thousands: set[str] = set()
    for v in values:
        s = v.lstrip("+-")
        if not _NUMBER.match(s):
            continue
        for mark in (" ", "\u00a0", "'"):
            if mark in s:
                thousands.add(mark)
        dot, comma = s.rfind("."), s.rfind(",")
        if dot >= 0 and comma >= 0:
            decimal.setdefault("." if dot > comma else ",", v)
            thousands.add("," if dot > comma else ".")
        elif dot >= 0 or comma >= 0:
            mark = "." if dot >= 0 else ","
            if s.count(mark) > 1:
                thousands.add(mark)
            elif len(s) - s.rfind(mark) - 1 != 3:
                decimal.setdefault(mark, v)
            # One mark before exactly three digits (1.234) could be either; others decide.
    if len(decimal) > 1:
        raise UsageError(
            f"{path}: prices use both a decimal point ({decimal['.']!r}) and a decimal comma "
            f"({decimal[',']!r}); export the file with one of them"
        )
    dec = next(iter(decimal), "," if "." in thousands else ".")
    thousands.discard(dec)
    return dec, thousands.pop() if len(thousands) == 1 else None
