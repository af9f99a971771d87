"""The ``env:`` section of the YAML config: where the prices come from and the risk limits.

Kept free of numpy/pandas imports so the trainer's config loading stays cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from perfmode.config.sections import check, from_mapping
from perfmode.config.yamlfile import read_yaml_file
from perfmode.errors import UsageError

SYNTHETIC = "synthetic"
SYNTHETIC_MARKETS = ("regimes", "cycles", "random-walk")
DATE_ORDERS = ("day-first", "month-first")


@dataclass(frozen=True)
class EnvConfig:
    """One asset, one position, costs and a drawdown limit; the defaults need no files."""

    data: str = SYNTHETIC
    """A price file (CSV or similar text export: Yahoo, Stooq, MetaTrader, forex sites,
    exchange klines, European spreadsheets, investing.com; see docs/environment.md), or
    "synthetic" for the seeded built-in price series."""

    symbol: str | None = None
    """The instrument to use from a file that holds several (a Symbol or Ticker column),
    matched ignoring case; null for a file of one instrument (a file of several is refused,
    listing them). ``--symbol`` overrides it."""

    date_format: str | None = None
    """"day-first" or "month-first": the order of a file whose every date reads both ways
    (02/01/2017). null decides it from the file's values, and refuses a file where nothing
    decides it. ``--date-format`` overrides it."""

    window: int = 32
    """Rows of past features in each observation (2 to 512). A checkpoint only resumes with
    the window it was trained with, because the observation size depends on it."""

    split: float | str | date = 0.8
    """Where the test part starts: a fraction of the rows used for training (between 0 and 1,
    exclusive), or a date "YYYY-MM-DD" (optionally with a time); rows from it on are the test
    part, which training never sees."""

    validation: float = 0.0
    """Fraction of all rows, taken from the end of the training part (right before the test
    part), held out to compare runs: ``perfmode sweep`` scores its trials there, so the test
    part stays untouched for the final ``perfmode evaluate``. Training never sees it. 0 (the
    default) holds nothing out; from 0 to 0.5."""

    max_position_size: float = 1.0
    """Largest position as a multiple of equity (0 < x <= 10); 1 is fully invested, long or
    short. Above 1 is leverage."""

    position_levels: int = 3
    """How many evenly spaced target positions from -max to +max the agent chooses from (odd,
    3 to 21, so flat is one of them). 3 means short / flat / long."""

    max_drawdown: float = 0.25
    """Fall from the peak equity (0 < x <= 1) that ends an episode; in evaluation the position
    is closed there and stays flat."""

    transaction_cost: float = 0.001
    """Cost per unit of position change, as a fraction of equity (0 to 0.1); 0.001 is 10 bp."""

    episode_length: int | None = 256
    """Steps per training episode, from a random seeded start (1 to 10,000,000); null runs
    from the first row to the end of the data."""

    synthetic_length: int = 5000
    """Rows (trading days) of the synthetic series (100 to 10,000,000)."""

    synthetic_seed: int = 0
    """Seed of the synthetic series; the same seed gives the same prices (0 or more)."""

    synthetic_market: Literal["regimes", "cycles", "random-walk"] = "regimes"
    """What the synthetic series is. "regimes": bull, sideways, bear and crash stretches that
    switch at random (a demo market; which one comes next cannot be foreseen). "cycles": a
    trend that swings up and down over 60 to 120 days under daily noise, a structure an agent
    can learn (the last few weeks' returns tell where the swing is), so a
    sweep has something to find. "random-walk": no structure at all, the control for
    "cycles": nothing should beat flat there beyond luck."""

    def __post_init__(self) -> None:
        check(bool(self.data.strip()), "env.data", self.data, 'a CSV path or "synthetic"')
        check(
            self.symbol is None or (isinstance(self.symbol, str) and bool(self.symbol.strip())),
            "env.symbol",
            self.symbol,
            "a symbol name, or null",
        )
        check(
            self.date_format in (None, *DATE_ORDERS),
            "env.date_format",
            self.date_format,
            '"day-first", "month-first" or null',
        )
        check(2 <= self.window <= 512, "env.window", self.window, "an integer from 2 to 512")
        object.__setattr__(self, "split", _normal_split(self.split))
        check(
            not isinstance(self.validation, bool) and 0 <= self.validation <= 0.5,
            "env.validation",
            self.validation,
            "a fraction from 0 (none) to 0.5",
        )
        check(
            0 < self.max_position_size <= 10,
            "env.max_position_size",
            self.max_position_size,
            "a number above 0 and at most 10",
        )
        check(
            3 <= self.position_levels <= 21 and self.position_levels % 2 == 1,
            "env.position_levels",
            self.position_levels,
            "an odd integer from 3 to 21",
        )
        check(
            0 < self.max_drawdown <= 1,
            "env.max_drawdown",
            self.max_drawdown,
            "a fraction above 0 and at most 1",
        )
        check(
            0 <= self.transaction_cost <= 0.1,
            "env.transaction_cost",
            self.transaction_cost,
            "a fraction from 0 to 0.1",
        )
        check(
            self.episode_length is None or 1 <= self.episode_length <= 10_000_000,
            "env.episode_length",
            self.episode_length,
            "an integer from 1 to 10000000, or null for the whole data",
        )
        check(
            100 <= self.synthetic_length <= 10_000_000,
            "env.synthetic_length",
            self.synthetic_length,
            "an integer from 100 to 10000000",
        )
        check(
            self.synthetic_market in SYNTHETIC_MARKETS,
            "env.synthetic_market",
            self.synthetic_market,
            ", ".join(f'"{m}"' for m in SYNTHETIC_MARKETS),
        )
        check(
            self.synthetic_seed >= 0,
            "env.synthetic_seed",
            self.synthetic_seed,
            "an integer of 0 or more",
        )

    @property
    def is_synthetic(self) -> bool:
        return self.data == SYNTHETIC

    def replace(self, **changes: Any) -> EnvConfig:
        return dataclasses.replace(self, **changes)

    def with_data(self, data: str | None) -> EnvConfig:
        """This section with ``--data`` applied: ``data`` (a price file or 'synthetic')
        becomes ``env.data``, so a run's checkpoints name the prices it learned from (evaluate
        reads them there); None keeps the config's."""
        return self if data is None else dataclasses.replace(self, data=data)


_SPLIT_ALLOWED = 'a fraction between 0 and 1 (exclusive) or a date "YYYY-MM-DD"'


def _normal_split(value: float | str | date) -> float | str:
    # YAML reads an unquoted 2020-01-01 as a date; keep a string so the config stays JSON-able
    # (meta.json) and compares equal to the quoted spelling.
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        check(False, "env.split", value, _SPLIT_ALLOWED)
    if isinstance(value, int | float):
        check(0 < value < 1, "env.split", value, _SPLIT_ALLOWED)
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            datetime.fromisoformat(text)
        except ValueError:
            check(False, "env.split", value, _SPLIT_ALLOWED)
        return text
    check(False, "env.split", value, _SPLIT_ALLOWED)
    raise AssertionError  # unreachable: check raised


def split_date(split: float | str) -> datetime | None:
    """The first test timestamp when ``split`` is a date, else None."""
    if isinstance(split, str):
        return datetime.fromisoformat(split).replace(tzinfo=None)
    return None


def env_config_from_mapping(mapping: Any, where: str = "env") -> EnvConfig:
    return from_mapping(EnvConfig, mapping, where)


def load_env_config(path: Path) -> EnvConfig:
    """The ``env:`` section of a YAML config file (defaults when the section is absent)."""
    doc = read_yaml_file(Path(path).expanduser())
    if doc.data is not None and not isinstance(doc.data, dict):
        raise UsageError(f"config file {path} must hold a mapping of sections (env:, ...)")
    return doc.build(lambda data: env_config_from_mapping((data or {}).get("env")))
