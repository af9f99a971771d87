"""Prices in: an OHLCV CSV or the synthetic series, checked, split into train and test.

Every problem with a file is one ``UsageError`` line naming the file and the line or
column, so a user can open the CSV and fix it; nothing here lets a traceback through.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfmode.env.config import EnvConfig, split_date
from perfmode.env.features import feature_table
from perfmode.env.synthetic import synthetic_prices
from perfmode.errors import UsageError

MIN_STEPS = 10
"""Each part must allow at least this many trading steps after its first ``window`` rows."""

# Normalised header (lower case, letters and digits only) -> role. Adjusted closes win over
# raw ones: they include splits and dividends, which is what a holder actually earned.
_CLOSE_NAMES = ("adjclose", "close", "price")
_TIME_NAMES = ("datetime", "timestamp", "date", "time", "timeutc", "opentime")


@dataclass(frozen=True, eq=False)
class Series:
    """One contiguous stretch of prices. The first ``window`` rows of a test series are the
    last training rows: they only feed the first observation, and no trading happens on them."""

    close: np.ndarray
    """Closing prices, float64, all positive."""
    time: np.ndarray
    """Timestamps, datetime64[ns], strictly increasing (naive; UTC when the file had offsets)."""
    features: np.ndarray
    """float32 array (rows, n_features) from :func:`perfmode.env.features.feature_table`."""

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True, eq=False)
class Market:
    train: Series
    test: Series
    info: dict[str, Any]
    """JSON-able description: source, rows, price column, train/test ranges, periods per year."""
    periods_per_year: float
    """For annualising: 252 for business-daily data, scaled by bars per day for intraday."""


def load_market(cfg: EnvConfig, data: str | None = None) -> Market:
    """Prices from ``data`` (or ``cfg.data`` when None), split by ``cfg.split``."""
    source = data if data is not None else cfg.data
    if source == "synthetic":
        close, time = synthetic_prices(cfg.synthetic_length, cfg.synthetic_seed)
        column, label = "close", "synthetic"
    else:
        path = Path(source).expanduser()
        close, time, column = read_prices(path)
        label = str(path)
    return split_market(close, time, cfg, source=label, price_column=column)


def read_prices(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Closes, timestamps (sorted, unique) and the name of the price column used."""
    frame = _read_csv(path)
    by_key: dict[str, str] = {}
    for name in frame.columns:
        by_key.setdefault(re.sub(r"[^a-z0-9]", "", str(name).lower()), str(name))
    close_col = next((by_key[k] for k in _CLOSE_NAMES if k in by_key), None)
    if close_col is None:
        found = ", ".join(str(c) for c in frame.columns)
        raise UsageError(f"{path}: no close column (expected Close or Adj Close; found {found})")
    # Rows that are entirely empty are blank lines; drop them before numbering lines.
    frame = frame.dropna(how="all")
    time = _parse_time(frame, by_key, path)
    close = _parse_close(frame[close_col], path, close_col)

    order = np.argsort(time, kind="stable")
    time, close = time[order], close[order]
    # A repeated stamp usually comes from appending an overlapping download; the later
    # row is the newer copy.
    keep = np.append(time[1:] != time[:-1], True)
    return close[keep], time[keep], close_col


def split_market(
    close: np.ndarray,
    time: np.ndarray,
    cfg: EnvConfig,
    *,
    source: str,
    price_column: str = "close",
) -> Market:
    n, w = len(close), cfg.window
    cut = _split_index(time, cfg.split)
    n_test = n - cut
    need_train, need_test = w + MIN_STEPS + 1, MIN_STEPS + 1
    if cut < need_train or n_test < need_test:
        raise UsageError(
            f"{source}: {n} rows are too few for window {w} and split {cfg.split}: "
            f"training needs at least {need_train} rows and the test part {need_test} "
            f"(got {cut} and {n_test})"
        )
    features = feature_table(close)
    train = Series(close[:cut], time[:cut], features[:cut])
    test = Series(close[cut - w :], time[cut - w :], features[cut - w :])
    ppy = periods_per_year(time)
    info = {
        "source": source,
        "price_column": price_column,
        "rows": n,
        "window": w,
        "train": _span(time[:cut]),
        "test": _span(time[cut:]),
        "periods_per_year": ppy,
    }
    return Market(train=train, test=test, info=info, periods_per_year=ppy)


def periods_per_year(time: np.ndarray) -> float:
    """How many rows make a year, from the timestamps' spacing.

    Daily or finer: trading days per year (252, or 365 when weekends have rows, as for
    crypto) times the median number of rows per calendar day. Coarser (weekly, monthly):
    365.25 days over the median spacing.
    """
    if len(time) < 2:
        return 252.0
    t = np.asarray(time, dtype="datetime64[ns]")
    step_days = float(np.median(np.diff(t).astype(np.int64))) / 86_400e9
    if step_days > 1.5:
        return 365.25 / step_days
    days = t.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    days_per_year = 365.0 if np.mean(weekday >= 5) > 0.05 else 252.0
    _, per_day = np.unique(days, return_counts=True)
    return days_per_year * float(np.median(per_day))


def _split_index(time: np.ndarray, split: float | str) -> int:
    when = split_date(split)
    if when is None:
        return int(len(time) * float(split))
    return int(np.searchsorted(time, np.datetime64(when, "ns"), side="left"))


def _span(time: np.ndarray) -> dict[str, Any]:
    daily = is_daily(time)
    return {"start": stamp(time[0], daily), "end": stamp(time[-1], daily), "rows": len(time)}


def is_daily(time: np.ndarray) -> bool:
    """Whether every stamp is a midnight, i.e. the rows are days (or coarser)."""
    return bool(np.all(time.astype("datetime64[D]") == time))


def stamp(t: np.datetime64, daily: bool) -> str:
    """A timestamp for people: just the date for daily data."""
    ts = pd.Timestamp(t)
    return ts.date().isoformat() if daily else ts.isoformat()


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise UsageError(f"data file {path} does not exist (pass a CSV path or 'synthetic')")
    if path.is_dir():
        raise UsageError(f"data file {path} is a folder, not a CSV file")
    try:
        return pd.read_csv(path, skip_blank_lines=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text CSV file (cannot decode it as UTF-8)") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: cannot read it as CSV: {first}") from None


def _line(frame: pd.DataFrame, pos: int) -> int:
    # pandas' index is the data row number; the header is line 1.
    return int(frame.index[pos]) + 2


def _parse_time(frame: pd.DataFrame, by_key: dict[str, str], path: Path) -> np.ndarray:
    key = next((k for k in _TIME_NAMES if k in by_key), None)
    first = str(frame.columns[0])
    if key is not None:
        col = by_key[key]
    elif first.strip() == "" or first.startswith("Unnamed"):
        # pandas' to_csv() writes an unnamed DatetimeIndex under an empty header.
        col = first
    else:
        raise UsageError(
            f"{path}: no date/time column (expected Date, Time, Datetime or Timestamp; "
            f"found {', '.join(str(c) for c in frame.columns)})"
        )
    raw = frame[col]
    if key == "date" and "time" in by_key:
        # Exports that split the stamp into a Date and a Time column.
        col = f"{col} + {by_key['time']}"
        raw = raw.astype(str) + " " + frame[by_key["time"]].astype(str)
    if pd.api.types.is_numeric_dtype(raw):
        parsed = _epoch(raw)
    else:
        parsed = _datetimes(raw.astype("string").str.strip())
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        value = raw.iloc[i]
        shown = "empty" if pd.isna(value) else f"{_cell(value)} is not a date/time"
        raise UsageError(f"{path}: line {_line(frame, i)}: column {col}: {shown}")
    return parsed.to_numpy(dtype="datetime64[ns]")


def _datetimes(text: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        # "Could not infer format": the per-element fallback is what we want, quietly.
        warnings.simplefilter("ignore", UserWarning)
        try:
            parsed = pd.to_datetime(text, errors="coerce")
        except (ValueError, TypeError):
            # Offsets that change (daylight saving) cannot share one zone; compare in UTC.
            parsed = pd.to_datetime(text, errors="coerce", utc=True)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _epoch(raw: pd.Series) -> pd.Series:
    values = raw.dropna()
    if len(values) and values.between(1900_01_01, 2100_12_31).all():
        # 20240102: a date written as a number (MetaTrader and other exports), not a Unix time.
        return pd.to_datetime(
            raw.astype("Int64").astype("string"), format="%Y%m%d", errors="coerce"
        )
    # Unix times from crypto exchanges come in seconds, milliseconds or finer.
    size = float(raw.abs().max()) if raw.notna().any() else 0.0
    unit = "s" if size < 1e11 else "ms" if size < 1e14 else "us" if size < 1e17 else "ns"
    return pd.to_datetime(raw, unit=unit, errors="coerce")


def _parse_close(raw: pd.Series, path: Path, col: str) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if len(bad):
        i = int(bad[0])
        v, original = values[i], raw.iloc[i]
        line = int(raw.index[i]) + 2
        if pd.isna(original):
            why = "is empty"
        elif not np.isfinite(v):
            why = f"is {_cell(original)}, not a number"
        else:
            why = f"is {_cell(original)}; prices must be positive"
        raise UsageError(f"{path}: line {line}: {col} {why}")
    return values


def _cell(value: object) -> str:
    # Text in quotes, so a stray space shows; numbers as written (not numpy's repr).
    return repr(value) if isinstance(value, str) else str(value)
