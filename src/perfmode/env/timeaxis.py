"""Facts about a sorted column of timestamps: bars per year, gaps, and how to show a stamp."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_DAY_NS = 86_400_000_000_000
GAP_DAYS = 4
"""A spacing longer than this (and than 5 usual steps) is missing data, not a weekend or a
holiday: the longest regular market closures (Easter, Christmas) span four days."""


def periods_per_year(time: np.ndarray) -> float:
    """How many rows make a year, from the timestamps' spacing.

    Daily or finer: trading days per year (252, or 365 when weekends have rows, as for
    crypto) times the median number of rows per calendar day. Coarser (weekly, monthly):
    365.25 days over the median spacing.
    """
    if len(time) < 2:
        return 252.0
    t = np.asarray(time, dtype="datetime64[ns]")
    step_days = float(np.median(np.diff(t).astype(np.int64))) / _DAY_NS
    if step_days > 1.5:
        return 365.25 / step_days
    days = t.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    days_per_year = 365.0 if np.mean(weekday >= 5) > 0.05 else 252.0
    _, per_day = np.unique(days, return_counts=True)
    return days_per_year * float(np.median(per_day))


def gaps(time: np.ndarray) -> tuple[int, dict[str, Any] | None]:
    """How many spacings are longer than :data:`GAP_DAYS` and 5 usual steps, and the largest."""
    if len(time) < 3:
        return 0, None
    step = np.diff(np.asarray(time, dtype="datetime64[ns]").astype(np.int64))
    limit = max(5 * float(np.median(step)), GAP_DAYS * _DAY_NS)
    long = step > limit
    if not long.any():
        return 0, None
    i = int(np.argmax(step))
    daily = is_daily(time)
    largest = {
        "from": stamp(time[i], daily),
        "to": stamp(time[i + 1], daily),
        "days": round(float(step[i]) / _DAY_NS, 1),
    }
    return int(long.sum()), largest


def is_daily(time: np.ndarray) -> bool:
    """Whether every stamp is a midnight, i.e. the rows are days (or coarser)."""
    return bool(np.all(time.astype("datetime64[D]") == time))


def stamp(t: np.datetime64, daily: bool) -> str:
    """A timestamp for people: just the date for daily data."""
    ts = pd.Timestamp(t)
    return ts.date().isoformat() if daily else ts.isoformat()
