"""Prices in: a price file or the synthetic series, checked, split into train and test.

Reading a file is :mod:`perfmode.env.pricefile`'s job; this module turns closes and stamps
into the train and test series. Every problem is one ``UsageError`` line naming the file
and the line or column, so a user can open the file and fix it. No torch here: the CLI
loads the data before it imports the trainer, so a bad file fails in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.config.env import EnvConfig, split_date
from perfmode.env.features import feature_table
from perfmode.env.pricefile import PriceFile, read_prices
from perfmode.env.summary import DataSummary
from perfmode.env.synthetic import synthetic_prices
from perfmode.env.timeaxis import is_daily, periods_per_year, stamp
from perfmode.errors import UsageError

__all__ = [
    "MIN_STEPS",
    "DataSummary",
    "Market",
    "PriceFile",
    "Series",
    "is_daily",
    "load_market",
    "periods_per_year",
    "read_prices",
    "split_market",
    "stamp",
]

MIN_STEPS = 10
"""Each part must allow at least this many trading steps after its first ``window`` rows."""


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
    """JSON-able description: source, rows, price column, train/(validation/)test ranges,
    periods per year, and under "read" how the file was understood (:class:`DataSummary`)."""
    periods_per_year: float
    """For annualising: 252 for business-daily data, scaled by bars per day for intraday."""
    summary: DataSummary
    """How the data was read; ``summary.one_line()`` is what train and evaluate log."""
    validation: Series | None = None
    """The rows between train and test held out by ``env.validation`` (None when 0); like a
    test series its first ``window`` rows are the last training rows."""

    def part(self, name: str) -> Series:
        """ "train", "validation" or "test"."""
        series = {"train": self.train, "validation": self.validation, "test": self.test}[name]
        if series is None:
            raise UsageError(
                "the data has no validation part; set env.validation (e.g. 0.1) in the config"
            )
        return series


def load_market(cfg: EnvConfig, data: str | None = None) -> Market:
    """Prices from ``data`` (or ``cfg.data`` when None), split by ``cfg.split``."""
    source = cfg.with_data(data).data
    if source == "synthetic":
        market = cfg.synthetic_market
        close, time = synthetic_prices(cfg.synthetic_length, cfg.synthetic_seed, market)
        daily = is_daily(time)
        kind = "" if market == "regimes" else f"{market}, "
        summary = DataSummary(
            source="synthetic",
            layout=f"synthetic ({kind}seed {cfg.synthetic_seed})",
            rows=len(close),
            first=stamp(time[0], daily),
            last=stamp(time[-1], daily),
            bars_per_year=periods_per_year(time),
        )
    else:
        path = Path(source).expanduser()
        prices = read_prices(path, symbol=cfg.symbol, date_format=cfg.date_format)
        close, time, summary = prices.close, prices.time, prices.summary
    return split_market(close, time, cfg, summary)


def split_market(
    close: np.ndarray, time: np.ndarray, cfg: EnvConfig, summary: DataSummary
) -> Market:
    n, w = len(close), cfg.window
    cut = _split_index(time, cfg.split)
    n_test = n - cut
    # The validation part is cut from the end of the training part: the test part stays
    # exactly where env.split puts it, with or without one.
    n_val = int(n * cfg.validation)
    end_train = cut - n_val
    need_train, need_test = w + MIN_STEPS + 1, MIN_STEPS + 1
    if end_train < need_train or n_test < need_test:
        raise UsageError(
            f"{summary.source}: {n} rows are too few for window {w} and split {cfg.split}: "
            f"training needs at least {need_train} rows and the test part {need_test} "
            f"(got {end_train} and {n_test})"
        )
    if cfg.validation > 0 and n_val < need_test:
        raise UsageError(
            f"{summary.source}: env.validation {cfg.validation} of {n} rows is {n_val} rows; "
            f"the validation part needs at least {need_test}: raise env.validation"
        )
    features = feature_table(close)
    train = Series(close[:end_train], time[:end_train], features[:end_train])
    test = Series(close[cut - w :], time[cut - w :], features[cut - w :])
    ppy = summary.bars_per_year
    info = {
        "source": summary.source,
        "price_column": summary.price_column,
        "rows": n,
        "window": w,
        "train": _span(time[:end_train]),
        "test": _span(time[cut:]),
        "periods_per_year": ppy,
        "read": summary.to_json(),
    }
    validation = None
    if n_val:
        validation = Series(
            close[end_train - w : cut], time[end_train - w : cut], features[end_train - w : cut]
        )
        # Only when there is one: checkpoints of runs without it keep comparing equal.
        info["validation"] = _span(time[end_train:cut])
    return Market(
        train=train,
        test=test,
        info=info,
        periods_per_year=ppy,
        summary=summary,
        validation=validation,
    )


def _split_index(time: np.ndarray, split: float | str) -> int:
    when = split_date(split)
    if when is None:
        return int(len(time) * float(split))
    return int(np.searchsorted(time, np.datetime64(when, "ns"), side="left"))


def _span(time: np.ndarray) -> dict[str, Any]:
    daily = is_daily(time)
    return {"start": stamp(time[0], daily), "end": stamp(time[-1], daily), "rows": len(time)}
