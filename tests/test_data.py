"""Prices in: CSV variants, every bad-data case, the synthetic series, the split, the config."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from perfmode.config.sections import from_mapping
from perfmode.env import EnvConfig, load_env_config, load_market
from perfmode.env.data import periods_per_year, read_prices
from perfmode.env.features import CLIP, FEATURES, feature_table
from perfmode.env.synthetic import synthetic_prices
from perfmode.errors import UsageError

SMALL = EnvConfig(window=4, split=0.5)
ROWS = 40


def closes(n: int = ROWS) -> list[float]:
    return [100.0 + i + (i % 3) for i in range(n)]


def read(path: Path, **kw) -> tuple[np.ndarray, np.ndarray, str]:
    prices = read_prices(path, **kw)
    return prices.close, prices.time, prices.summary.price_column


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
    close, time, column = read(yahoo_csv(tmp_path))
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
    close, time, _ = read(write_csv(tmp_path / "v.csv", header, rows))
    assert len(close) == n
    assert str(time[0])[:4] == "2021"
    np.testing.assert_allclose(close, closes(n))
    assert np.all(np.diff(time.astype(np.int64)) > 0)


def test_separate_date_and_time_columns(tmp_path: Path) -> None:
    rows = [f"2021-01-04,09:{m:02d},{c}" for m, c in enumerate(closes(20))]
    _, time, _ = read(write_csv(tmp_path / "dt.csv", "Date,Time,Close", rows))
    assert str(time[1]).startswith("2021-01-04T09:01")


def test_sorts_by_time_and_keeps_the_last_duplicate(tmp_path: Path) -> None:
    rows = ["2021-01-06,3", "2021-01-04,1", "2021-01-05,2", "2021-01-05,2.5", "", "2021-01-07,4"]
    close, time, _ = read(write_csv(tmp_path / "s.csv", "Date,Close", rows))
    assert close.tolist() == [1.0, 2.5, 3.0, 4.0]
    assert [str(t)[:10] for t in time] == ["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07"]


def test_pandas_index_export_with_unnamed_time_column(tmp_path: Path) -> None:
    rows = [f"2021-01-{d:02d},{c}" for d, c in enumerate(closes(5), start=4)]
    close, _, _ = read(write_csv(tmp_path / "p.csv", ",Close", rows))
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
        read(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_market(SMALL, str(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="empty"):
        read(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(UsageError, match=r"bin\.csv"):
        read(tmp_path / "bin.csv")
    with pytest.raises(UsageError, match="is a folder"):
        read(tmp_path)


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


# --- exports as people bring them (samples in tests/data, written from each layout) ----

DATA = Path(__file__).parent / "data"


def stamps(time: np.ndarray) -> list[str]:
    return [str(t)[:19] for t in time]


def test_yahoo_daily_skips_null_rows_and_prefers_adjusted_close() -> None:
    prices = read_prices(DATA / "yahoo_daily.csv")
    s = prices.summary
    assert (s.price_column, s.time_columns, s.date_order) == ("Adj Close", ("Date",), "year-first")
    # 2021-01-18 (Martin Luther King day) is all null in Yahoo's export: skipped, counted.
    assert s.null_rows == 1 and s.rows == 14 and s.rows_read == 15
    days = stamps(prices.time)
    assert days[0] == "2021-01-04T00:00:00" and days[-1] == "2021-01-22T00:00:00"
    assert "2021-01-18T00:00:00" not in days
    assert prices.close[:2].tolist() == [127.331337, 128.905579]
    assert prices.close[-1] == 136.836060


def test_stooq_polish_headers() -> None:
    prices = read_prices(DATA / "stooq_pl_daily.csv")
    assert prices.summary.price_column == "Zamkniecie"
    assert prices.summary.time_columns == ("Data",)
    assert stamps(prices.time)[:2] == ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]
    assert prices.close.tolist() == [4672.59, 4634.14, 4632.39, 4652.06, 4683.47]


def test_forex_gmt_time_is_day_first_although_only_line_40_proves_it() -> None:
    # The file: '02.01.2017' read month-first would be 1 February.
    prices = read_prices(DATA / "dukascopy_eurusd_h1.csv")
    s = prices.summary
    assert s.time_columns == ("Gmt time",) and s.price_column == "Close"
    assert s.date_order == "day-first"
    assert s.date_order_reason == "line 40: '13.01.2017 02:00:00.000'"
    assert s.time_format == "DD.MM.YYYY hh:mm:ss.fff"
    assert s.time_zone.startswith("UTC")
    assert stamps(prices.time)[:2] == ["2017-01-02T00:00:00", "2017-01-02T07:00:00"]
    assert stamps(prices.time)[-1] == "2017-01-13T09:00:00"
    assert np.all(np.diff(prices.time) == np.timedelta64(7, "h"))
    assert prices.close[:2].tolist() == [1.05160, 1.05180]


def test_forex_local_time_offsets_become_utc_across_daylight_saving() -> None:
    prices = read_prices(DATA / "dukascopy_local_time.csv")
    s = prices.summary
    assert s.time_columns == ("Local time",) and s.date_order == "day-first"
    assert s.time_zone == "UTC (converted from the offsets in the file)"
    days = stamps(prices.time)
    # Midnight CET (+01:00) is 23:00 UTC the day before; from 26 March, CEST (+02:00): 22:00.
    assert days[:3] == ["2017-03-22T23:00:00", "2017-03-23T23:00:00", "2017-03-24T23:00:00"]
    assert days[3:5] == ["2017-03-25T22:00:00", "2017-03-26T22:00:00"]
    assert prices.close[0] == 1.0769


def test_forex_time_utc_with_slashes() -> None:
    prices = read_prices(DATA / "fx_time_utc.csv")
    s = prices.summary
    assert (s.time_columns, s.date_order, s.time_format) == (
        ("Time (UTC)",),
        "day-first",
        "DD/MM/YYYY hh:mm",
    )
    assert stamps(prices.time)[:2] == ["2019-11-28T00:00:00", "2019-11-28T04:00:00"]
    assert stamps(prices.time)[-1] == "2019-11-29T20:00:00"
    assert prices.close[:2].tolist() == [1.2894, 1.2891]


def test_metatrader5_tab_separated_angle_brackets(tmp_path: Path) -> None:
    prices = read_prices(DATA / "mt5_eurusd_m15.csv")
    s = prices.summary
    assert s.separator == "\t" and s.price_column == "<CLOSE>"
    assert s.time_columns == ("<DATE>", "<TIME>")
    assert s.time_format == "YYYY.MM.DD + hh:mm:ss"
    assert stamps(prices.time)[:2] == ["2024-01-02T00:00:00", "2024-01-02T00:15:00"]
    assert stamps(prices.time)[-1] == "2024-01-02T02:15:00"
    assert prices.close[:3].tolist() == [1.10381, 1.10407, 1.10407]
    # The same export saved as UTF-16 (what MetaTrader writes on some systems) reads the same.
    utf16 = tmp_path / "mt5_utf16.csv"
    utf16.write_bytes((DATA / "mt5_eurusd_m15.csv").read_text().encode("utf-16"))
    again = read_prices(utf16)
    assert again.summary.encoding == "utf-16"
    np.testing.assert_array_equal(again.time, prices.time)
    np.testing.assert_array_equal(again.close, prices.close)


def test_metatrader4_history_without_header() -> None:
    prices = read_prices(DATA / "mt4_eurusd_h1.csv")
    s = prices.summary
    assert s.layout.startswith("MetaTrader 4 history, no header")
    assert s.time_columns == ("date", "time") and s.price_column == "close"
    assert stamps(prices.time)[:2] == ["2024-01-02T00:00:00", "2024-01-02T01:00:00"]
    assert prices.close[:3].tolist() == [1.10381, 1.10407, 1.10407]  # the sixth field


def test_exchange_klines_without_header_in_ms_and_us(tmp_path: Path) -> None:
    prices = read_prices(DATA / "binance_btcusdt_1h.csv")
    s = prices.summary
    assert s.layout.startswith("exchange klines") and s.price_column == "close"
    assert s.time_format == "Unix time (ms)" and s.time_zone == "UTC (Unix time)"
    assert stamps(prices.time)[:2] == ["2024-01-01T00:00:00", "2024-01-01T01:00:00"]
    assert prices.close[:2].tolist() == [42232.58, 42258.08]  # the fifth field, not the sixth
    # Binance's spot dumps switched to microseconds in 2025: a file that joins both reads on.
    lines = (DATA / "binance_btcusdt_1h.csv").read_text().splitlines()
    switched = [
        ",".join([str(int(f[0]) * 1000), *f[1:]]) for f in (ln.split(",") for ln in lines[5:])
    ]
    (tmp_path / "k.csv").write_text("\n".join(lines[:5] + switched) + "\n")
    mixed = read_prices(tmp_path / "k.csv")
    np.testing.assert_array_equal(mixed.time, prices.time)
    assert mixed.summary.time_format == "Unix time (ms, µs)"


def test_european_spreadsheet_semicolons_and_decimal_commas() -> None:
    prices = read_prices(DATA / "excel_de_dax.csv")
    s = prices.summary
    assert (s.separator, s.decimal, s.thousands) == (";", ",", ".")
    assert s.encoding == "utf-8-sig" and s.price_column == "Schluss"
    assert s.time_columns == ("Datum",) and s.date_order == "day-first"
    assert stamps(prices.time)[:2] == ["2017-01-09T00:00:00", "2017-01-10T00:00:00"]
    assert stamps(prices.time)[-1] == "2017-01-16T00:00:00"
    assert prices.close.tolist() == [11563.99, 11583.30, 11646.17, 11521.04, 11629.18, 11554.71]


def test_investing_com_newest_first_with_thousands_and_k_volumes() -> None:
    prices = read_prices(DATA / "investing_gold.csv")
    s = prices.summary
    assert s.price_column == "Price" and s.time_columns == ("Date",)
    assert s.date_order == "month name" and s.newest_first
    assert (s.decimal, s.thousands) == (".", ",")
    assert stamps(prices.time)[0] == "2017-01-12T00:00:00"
    assert stamps(prices.time)[-1] == "2017-01-20T00:00:00"
    assert prices.close.tolist() == [1197.80, 1199.40, 1216.30, 1208.90, 1203.00, 1209.60]


def test_multi_symbol_file_is_refused_listing_symbols_until_one_is_picked() -> None:
    path = DATA / "multi_symbol.csv"
    with pytest.raises(UsageError, match=r"holds 3 symbols \(AAPL, MSFT, SPY\); pick one with "):
        read_prices(path)
    with pytest.raises(UsageError, match=r"--symbol NAME or env\.symbol"):
        load_market(SMALL, str(path))
    prices = read_prices(path, symbol="msft")
    assert prices.summary.symbol == "MSFT" and prices.summary.symbol_column == "Symbol"
    assert prices.close.tolist() == [217.69, 217.90, 212.25, 218.29]
    assert stamps(prices.time)[0] == "2021-01-04T00:00:00"
    with pytest.raises(UsageError, match=r"'TSLA' is not in the file \(it holds AAPL, MSFT, SPY\)"):
        read_prices(path, symbol="TSLA")


def test_many_symbols_are_listed_briefly(tmp_path: Path) -> None:
    rows = [f"2021-01-04,S{i:02d},{10 + i}" for i in range(25)]
    path = write_csv(tmp_path / "long.csv", "Date,Ticker,Close", rows)
    with pytest.raises(UsageError, match=r"holds 25 symbols \(S00, .*, S09 and 15 more\)"):
        read_prices(path)


def dmy_csv(tmp_path: Path, days: list[str]) -> Path:
    rows = [f"{d},{100 + i}" for i, d in enumerate(days)]
    return write_csv(tmp_path / "dates.csv", "Date,Close", rows)


def test_ambiguous_dates_are_refused_unless_the_order_is_given(tmp_path: Path) -> None:
    path = dmy_csv(tmp_path, [f"{d:02d}/{m:02d}/2017" for m in (1, 2, 3) for d in range(2, 13)])
    with pytest.raises(UsageError) as err:
        read_prices(path)
    msg = str(err.value)
    assert "every date reads both day-first and month-first (line 2: '02/01/2017')" in msg
    assert "--date-format day-first or month-first" in msg and "env.date_format" in msg
    assert "\n" not in msg
    day_first = read_prices(path, date_format="day-first")
    assert stamps(day_first.time)[0] == "2017-01-02T00:00:00"
    assert day_first.summary.date_order_reason == "date_format"
    month_first = read_prices(path, date_format="month-first")
    assert stamps(month_first.time)[0] == "2017-02-01T00:00:00"
    # The config says it too.
    market = load_market(EnvConfig(window=2, split=0.5, date_format="day-first"), str(path))
    assert market.info["train"]["start"] == "2017-01-02"


def test_day_first_stamp_only_from_line_200_is_read_day_first_from_line_1(
    tmp_path: Path,
) -> None:
    start = np.datetime64("2017-01-04T16:00")
    hours = start + np.arange(240) * np.timedelta64(1, "h")
    text = [
        f"{str(t)[8:10]}.{str(t)[5:7]}.{str(t)[:4]} {str(t)[11:16]}:00.000"
        for t in hours.astype(str)
    ]
    path = write_csv(tmp_path / "fx.csv", "Gmt time,Close", [f"{t},1.05" for t in text])
    assert text[200].startswith("13.01.2017")  # the first stamp only day-first can read
    prices = read_prices(path)
    assert prices.summary.date_order_reason == "line 202: '13.01.2017 00:00:00.000'"
    np.testing.assert_array_equal(prices.time, hours.astype("datetime64[ns]"))


def test_a_file_that_mixes_day_first_and_month_first_is_refused(tmp_path: Path) -> None:
    path = dmy_csv(tmp_path, ["12/01/2017", "13/01/2017", "01/14/2017"])
    with pytest.raises(
        UsageError,
        match=r"line 3 reads only day-first \('13/01/2017'\) but line 4 only month-first \('01/14/2017'\)",
    ):
        read_prices(path)


def test_date_format_contradicted_by_a_row_names_it(tmp_path: Path) -> None:
    path = dmy_csv(tmp_path, ["12/01/2017", "13/01/2017"])
    with pytest.raises(
        UsageError,
        match=r"line 3: column Date: '13/01/2017' is not a month-first date/time \(date_format",
    ):
        read_prices(path, date_format="month-first")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "mt4.csv",
            "2024.01.02,00:00,1.1,1.2,1.0,1.1,5\n2024.01.02,25:00,1.1,1.2,1.0,1.1,5\n",
            "line 2: column time: '25:00' is not a time",
        ),
        (
            "mt4.csv",
            "2024.01.02,00:00,1.1,1.2,1.0,1.1,5\n2024.01.02,01:00,1.1,1.2,1.0,x,5\n",
            "line 2: close is 'x', not a number",
        ),
        (
            "k.csv",
            "1704067200000,1,2,0.5,1.5,9\n17040,1,2,0.5,1.5,9\n",
            "line 2: column open time: 17040 is not",
        ),
        (
            "eu.csv",
            "Datum;Schluss\n13.01.2017;1,5\n14.01.2017;2.5\n",
            "both a decimal point \\('2.5'\\) and a decimal comma \\('1,5'\\)",
        ),
        (
            "d.csv",
            "Date,Close\n2021-02-28,1\n2021-02-30,2\n",
            "line 3: column Date: '2021-02-30' is not",
        ),
        ("d.csv", "Date,Close\n", "no rows of prices"),
    ],
)
def test_bad_exports_name_line_and_column(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError, match=expected) as err:
        read_prices(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_excel_hint_line_blank_lines_latin1_and_trailing_separators(tmp_path: Path) -> None:
    rows = ["13.01.2017;1,5;", "", "16.01.2017;1,6;", "17.01.2017;-1,7;"]
    text = "\n".join(["", "sep=;", "Datum;Schluss;", *rows]) + "\n"
    path = tmp_path / "alt.csv"
    path.write_bytes(text.replace("Datum", "Kurs vom Datum").encode("latin-1"))
    with pytest.raises(UsageError, match="no date/time column"):
        read_prices(path)  # "Kurs vom Datum" is not a known name
    path.write_bytes(text.replace("Schluss", "Schlußkurs").encode("latin-1"))
    with pytest.raises(UsageError, match="no close column"):
        read_prices(path)
    path.write_bytes(text.encode("latin-1"))
    # The hint line and blank lines count: the bad price is on line 7.
    with pytest.raises(UsageError, match=r"line 7: Schluss is -1\.7; prices must be positive"):
        read_prices(path)
    path.write_bytes(
        text.replace("-1,7", "1,7").replace("Schluss", "Schlusskurs").encode("latin-1")
    )
    prices = read_prices(path)
    assert prices.summary.separator == ";" and prices.summary.encoding == "utf-8"
    assert prices.close.tolist() == [1.5, 1.6, 1.7]
    assert stamps(prices.time)[0] == "2017-01-13T00:00:00"
    path.write_bytes("Datum;Eröffnung;Schluss\n13.01.2017;1,4;1,5\n".encode("latin-1"))
    prices = read_prices(path)
    assert prices.summary.encoding == "latin-1" and prices.close.tolist() == [1.5]


def test_summary_counts_duplicates_and_gaps(tmp_path: Path) -> None:
    days = [str(d) for d in np.busday_offset("2021-01-04", np.arange(30), roll="forward")]
    rows = [f"{d},{100 + i}" for i, d in enumerate(days) if not 10 <= i < 20]
    rows.insert(3, f"{days[2]},555")  # an overlapping download repeats a day: the later row wins
    prices = read_prices(write_csv(tmp_path / "g.csv", "Date,Close", rows))
    s = prices.summary
    assert s.duplicates_dropped == 1 and s.rows == 20
    assert prices.close[2] == 555.0
    assert s.gaps == 1
    assert s.largest_gap == {"from": days[9], "to": days[20], "days": 17.0}  # Fri .. Mon
    assert "17 days" in dict(s.lines())["Gaps"]
    assert "1 duplicate stamp dropped" in s.one_line()


def test_order_and_line_numbers_hold_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfmode.env import pricefile

    monkeypatch.setattr(pricefile, "CHUNK_ROWS", 7)  # a big file's reading, on 400 rows
    hours = np.datetime64("2017-01-02T00:00") + np.arange(400) * np.timedelta64(1, "h")
    text = [f"{t[8:10]}/{t[5:7]}/{t[:4]} {t[11:16]}" for t in hours.astype(str)]
    rows = [f"{t},{1 + i}" for i, t in enumerate(text)]
    path = write_csv(tmp_path / "c.csv", "Date,Close", rows)
    prices = read_prices(path)
    assert prices.summary.date_order_reason == "line 266: '13/01/2017 00:00'"
    np.testing.assert_array_equal(prices.time, hours.astype("datetime64[ns]"))
    assert prices.close[-1] == 400.0
    rows[300] = rows[300].replace(",301", ",-1")
    write_csv(path, "Date,Close", rows)
    with pytest.raises(UsageError, match="line 302: Close is -1; prices must be positive"):
        read_prices(path)


def test_synthetic_has_a_summary_too() -> None:
    market = load_market(EnvConfig())
    assert market.summary.source == "synthetic" and market.summary.rows == 5000
    assert market.summary.one_line().startswith("Data synthetic: 5,000 rows 2000-01-03 .. ")
    assert market.info["read"]["layout"] == "synthetic (seed 0)"


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
        ("date_format", "dmy", '"day-first", "month-first" or null'),
        ("symbol", " ", "a symbol name, or null"),
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
    with pytest.raises(UsageError, match=r"c\.yaml:2: env\.window is 1"):
        load_env_config(path)
