"""Prices in: CSV variants, every bad-data case, the synthetic series, the split, the config."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from perfmode.configutil import from_mapping
from perfmode.env import EnvConfig, load_env_config, load_market
from perfmode.env.data import periods_per_year, read_prices
from perfmode.env.features import CLIP, FEATURES, feature_table
from perfmode.env.synthetic import synthetic_prices
from perfmode.errors import UsageError

SMALL = EnvConfig(window=4, split=0.5)
ROWS = 40


def closes(n: int = ROWS) -> list[float]:
    return [100.0 + i + (i % 3) for i in range(n)]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def yahoo_csv(tmp_path: Path, n: int = ROWS) -> Path:
    days = np.busday_offset("2021-01-04", np.arange(n), roll="forward")
    rows = [
        f"{d},{c - 1},{c + 1},{c - 2},{c},{c * 0.9},{1000 + i}"
        for i, (d, c) in enumerate(zip(days, closes(n), strict=True))
    ]
    return write_csv(tmp_path / "yahoo.csv", "Date,Open,High,Low,Close,Adj Close,Volume", rows)


def test_yahoo_export_prefers_adjusted_close(tmp_path: Path) -> None:
    close, time, column = read_prices(yahoo_csv(tmp_path))
    assert column == "Adj Close"
    np.testing.assert_allclose(close, np.array(closes()) * 0.9)
    assert time.dtype == np.dtype("datetime64[ns]")
    assert str(time[0])[:10] == "2021-01-04"


@pytest.mark.parametrize(
    ("header", "stamp"),
    [
        ("date,open,high,low,close,volume", "2021-01-{d:02d}"),
        ("Time,Open,High,Low,Close", "2021-01-04 09:{d:02d}:00"),
        ("Datetime,Close,Volume", "2021-01-04T09:{d:02d}:00-05:00"),
        ("timestamp,open,close", "{epoch}"),
        ("Date,Close", "2021/01/{d:02d}"),
        ("Date,Close", "202101{d:02d}"),
    ],
)
def test_csv_variants(tmp_path: Path, header: str, stamp: str) -> None:
    n = 28
    rows = []
    for i, c in enumerate(closes(n)):
        cols = header.split(",")
        values = {"close": str(c), "volume": "5", "open": str(c), "high": str(c), "low": str(c)}
        t = stamp.format(d=i + 1, epoch=1_609_459_200 + 60 * i)
        rows.append(",".join([t] + [values[k.lower()] for k in cols[1:]]))
    close, time, _ = read_prices(write_csv(tmp_path / "v.csv", header, rows))
    assert len(close) == n
    assert str(time[0])[:4] == "2021"
    np.testing.assert_allclose(close, closes(n))
    assert np.all(np.diff(time.astype(np.int64)) > 0)


def test_separate_date_and_time_columns(tmp_path: Path) -> None:
    rows = [f"2021-01-04,09:{m:02d},{c}" for m, c in enumerate(closes(20))]
    _, time, _ = read_prices(write_csv(tmp_path / "dt.csv", "Date,Time,Close", rows))
    assert str(time[1]).startswith("2021-01-04T09:01")


def test_sorts_by_time_and_keeps_the_last_duplicate(tmp_path: Path) -> None:
    rows = ["2021-01-06,3", "2021-01-04,1", "2021-01-05,2", "2021-01-05,2.5", "", "2021-01-07,4"]
    close, time, _ = read_prices(write_csv(tmp_path / "s.csv", "Date,Close", rows))
    assert close.tolist() == [1.0, 2.5, 3.0, 4.0]
    assert [str(t)[:10] for t in time] == ["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07"]


def test_pandas_index_export_with_unnamed_time_column(tmp_path: Path) -> None:
    rows = [f"2021-01-{d:02d},{c}" for d, c in enumerate(closes(5), start=4)]
    close, _, _ = read_prices(write_csv(tmp_path / "p.csv", ",Close", rows))
    assert len(close) == 5


@pytest.mark.parametrize(
    ("header", "rows", "expected"),
    [
        ("Date,Open,Volume", ["2021-01-04,1,2"], "no close column"),
        ("Open,Close", ["1,2"], "no date/time column"),
        ("Date,Close", ["2021-01-04,1", "2021-01-05,", "2021-01-06,3"], "line 3: Close is empty"),
        ("Date,Close", ["2021-01-04,1", "2021-01-05,abc"], "line 3: Close is 'abc', not a number"),
        ("Date,Close", ["2021-01-04,1", "2021-01-05,nan"], "line 3: Close is"),
        (
            "Date,Close",
            ["2021-01-04,1", "2021-01-05,2", "2021-01-06,0"],
            "line 4: Close is 0; prices must be positive",
        ),
        ("Date,Close", ["2021-01-04,1.5", "2021-01-05,-5.25"], "Close is -5.25; prices must"),
        ("Date,Close", ["2021-01-04,1", "someday,2"], "line 3: column Date: 'someday' is not"),
        ("Date,Close", ["2021-01-04,1", ",2"], "line 3: column Date: empty"),
    ],
)
def test_bad_data_names_file_and_place(
    tmp_path: Path, header: str, rows: list[str], expected: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(UsageError, match=expected) as err:
        read_prices(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_market(SMALL, str(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="empty"):
        read_prices(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(UsageError, match=r"bin\.csv"):
        read_prices(tmp_path / "bin.csv")
    with pytest.raises(UsageError, match="is a folder"):
        read_prices(tmp_path)


def test_too_few_rows_for_window_and_split(tmp_path: Path) -> None:
    path = yahoo_csv(tmp_path, n=30)
    with pytest.raises(UsageError, match=r"30 rows are too few for window 8 and split 0\.5"):
        load_market(EnvConfig(window=8, split=0.5), str(path))
    with pytest.raises(UsageError, match=r"test part 11 \(got 27 and 3\)"):
        load_market(EnvConfig(window=4, split=0.9), str(path))
    # The same file is enough with a smaller window.
    assert len(load_market(SMALL, str(path)).test) == 4 + 15


def test_split_by_fraction_keeps_window_rows_of_history(tmp_path: Path) -> None:
    market = load_market(SMALL, str(yahoo_csv(tmp_path)))
    assert len(market.train) == 20
    assert len(market.test) == 4 + 20
    # The test series starts with the last training rows (history only, no trading).
    np.testing.assert_array_equal(market.test.close[:4], market.train.close[-4:])
    assert market.info["train"]["rows"] == 20 and market.info["test"]["rows"] == 20
    assert market.info["test"]["start"] == str(market.test.time[4])[:10]
    assert market.info["source"].endswith("yahoo.csv")
    assert market.periods_per_year == 252.0


def test_split_by_date(tmp_path: Path) -> None:
    cfg = EnvConfig(window=4, split="2021-02-01")
    market = load_market(cfg, str(yahoo_csv(tmp_path)))
    assert market.info["test"]["start"] == "2021-02-01"
    assert str(market.train.time[-1])[:10] == "2021-01-29"
    with pytest.raises(UsageError, match="too few"):
        load_market(EnvConfig(window=4, split="2030-01-01"), str(yahoo_csv(tmp_path)))


def test_synthetic_is_seeded_and_realistic() -> None:
    a, t = synthetic_prices(5000, seed=3)
    b, _ = synthetic_prices(5000, seed=3)
    c, _ = synthetic_prices(5000, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a > 0) and np.all(np.diff(t.astype(np.int64)) > 0)
    ret = np.diff(np.log(a))
    # Annual volatility in a stock-like range, and it changes over time (regimes).
    assert 0.08 < ret.std() * np.sqrt(252) < 0.6
    rolling = np.array([ret[i : i + 100].std() for i in range(0, 4900, 100)])
    assert rolling.max() > 1.8 * rolling.min()


def test_default_config_needs_no_files() -> None:
    market = load_market(EnvConfig())
    assert market.info["source"] == "synthetic"
    assert market.info["rows"] == 5000
    assert len(market.train) == 4000 and market.periods_per_year == 252.0
    assert market.train.features.shape == (4000, len(FEATURES))


def test_data_argument_overrides_config(tmp_path: Path) -> None:
    cfg = EnvConfig(data=str(tmp_path / "missing.csv"), window=4)
    assert load_market(cfg, "synthetic").info["source"] == "synthetic"


def test_features_are_causal_and_bounded() -> None:
    close, _ = synthetic_prices(600, seed=1)
    full = feature_table(close)
    assert full.dtype == np.float32 and full.flags.c_contiguous
    assert np.all(np.abs(full) <= CLIP)
    # Changing a later price must not change any earlier row.
    later = close.copy()
    later[400:] *= 1.5
    np.testing.assert_array_equal(feature_table(later)[:400], full[:400])
    assert np.all(feature_table(np.full(50, 7.0)) == 0.0)


@pytest.mark.parametrize(
    ("step", "per_day", "weekends", "expected"),
    [
        ("1D", 1, False, 252.0),
        ("1D", 1, True, 365.0),
        ("1min", 390, False, 252.0 * 390),
        ("7D", 1, True, 365.25 / 7),
    ],
)
def test_periods_per_year(step: str, per_day: int, weekends: bool, expected: float) -> None:
    import pandas as pd

    if step == "1min":
        days = pd.bdate_range("2021-01-04", periods=10)
        stamps = [d + pd.Timedelta(minutes=570 + m) for d in days for m in range(per_day)]
        time = pd.DatetimeIndex(stamps).to_numpy()
    else:
        freq = step if weekends else "B"
        time = pd.date_range("2021-01-04", periods=60, freq=freq).to_numpy()
    assert periods_per_year(time) == pytest.approx(expected)


# --- config ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("window", 0, "an integer from 2 to 512"),
        ("window", 1000, "an integer from 2 to 512"),
        ("split", 1.0, "a fraction between 0 and 1"),
        ("split", "soon", "a fraction between 0 and 1"),
        ("max_position_size", 0, "above 0 and at most 10"),
        ("max_drawdown", 1.5, "above 0 and at most 1"),
        ("transaction_cost", -0.01, "from 0 to 0.1"),
        ("episode_length", 0, "or null"),
        ("position_levels", 4, "an odd integer"),
        ("synthetic_length", 10, "from 100"),
    ],
)
def test_config_range_errors_name_key_and_range(key: str, value: object, allowed: str) -> None:
    with pytest.raises(UsageError, match=f"config: env.{key} is .*; it must be .*{allowed}"):
        from_mapping(EnvConfig, {key: value}, "env")


def test_config_from_yaml_mapping(tmp_path: Path) -> None:
    text = "env:\n  window: 16\n  split: 2020-01-01\n  episode_length: null\n"
    cfg = from_mapping(EnvConfig, yaml.safe_load(text)["env"], "env")
    assert cfg.window == 16 and cfg.split == "2020-01-01" and cfg.episode_length is None
    assert EnvConfig(split=date(2020, 1, 1)) == cfg.replace(window=32, episode_length=256)
    with pytest.raises(UsageError, match=r"unknown key env\.windw"):
        from_mapping(EnvConfig, {"windw": 3}, "env")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_env_config(path) == cfg
    path.write_text("train:\n  steps: 5\n")
    assert load_env_config(path) == EnvConfig()
    path.write_text("env: [1, 2\n")
    with pytest.raises(UsageError, match="not valid YAML at line"):
        load_env_config(path)
    path.write_text("env:\n  window: 1\n")
    with pytest.raises(UsageError, match=r"c\.yaml: config: env\.window is 1"):
        load_env_config(path)
