"""``perfmode data check``, and train/evaluate reading real exports before torch is loaded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_perfmode
from trainkit import write_config

from perfmode.base.home import Home

DATA = Path(__file__).parent / "data"


def forex_export(path: Path, rows: int = 300) -> Path:
    """Hourly day-first stamps from 4 January 16:00: only line 202 (13.01) decides the order."""
    hours = np.datetime64("2017-01-04T16:00") + np.arange(rows) * np.timedelta64(1, "h")
    lines = ["Gmt time,Open,High,Low,Close,Volume"]
    for i, t in enumerate(hours.astype(str)):
        c = 1.05 + 0.001 * np.sin(i / 7)
        stamp = f"{t[8:10]}.{t[5:7]}.{t[:4]} {t[11:16]}:00.000"
        lines.append(f"{stamp},{c:.5f},{c + 0.0004:.5f},{c - 0.0004:.5f},{c:.5f},{100 + i}.25")
    path.write_text("\n".join(lines) + "\n")
    return path


def long_multi_symbol(path: Path, days: int = 150) -> Path:
    stamps = np.busday_offset("2020-01-01", np.arange(days), roll="forward").astype(str)
    lines = ["Date,Symbol,Open,High,Low,Close,Volume"]
    for i, d in enumerate(stamps):
        for sym, base in (("AAPL", 75.0), ("MSFT", 160.0)):
            c = base * (1 + 0.05 * np.sin(i / 9))
            lines.append(f"{d},{sym},{c:.2f},{c + 1:.2f},{c - 1:.2f},{c:.2f},{1000 + i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_check_tells_how_the_file_was_read(cli, tmp_path: Path) -> None:
    path = forex_export(tmp_path / "EURUSD_Candlestick_1_Hour_BID.csv")
    res = cli("data", "check", str(path))
    assert res.exit_code == 0, res.output
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in res.stdout.splitlines())
    assert rows["Layout"] == "header line; comma-separated, decimal point; UTF-8"
    assert rows["Time"] == (
        "'Gmt time', DD.MM.YYYY hh:mm:ss.fff, day-first (line 202: '13.01.2017 00:00:00.000')"
    )
    assert rows["Price"] == "'Close'" and rows["Time zone"] == "UTC (column 'Gmt time')"
    assert rows["Range"] == "2017-01-04T16:00:00 .. 2017-01-17T03:00:00"
    assert rows["Gaps"] == "none longer than 4 days"
    assert rows["Bars per year"] == "8,760"  # round the clock, weekends too
    assert rows["Split 0.8"].startswith(
        "train 2017-01-04T16:00:00 .. 2017-01-14T15:00:00 (240 rows)"
    )


def test_data_check_json(cli, tmp_path: Path) -> None:
    res = cli("data", "check", str(forex_export(tmp_path / "fx.csv")), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["time_columns"] == ["Gmt time"] and doc["price_column"] == "Close"
    assert doc["date_order"] == "day-first" and doc["separator"] == ","
    assert (doc["first"], doc["rows"], doc["duplicates_dropped"]) == ("2017-01-04T16:00:00", 300, 0)
    assert doc["bars_per_year"] == 365 * 24
    assert doc["train"]["rows"] == 240 and doc["problem"] is None


def test_data_check_flags_pick_symbol_and_date_order(cli, tmp_path: Path) -> None:
    path = long_multi_symbol(tmp_path / "long.csv")
    res = cli("data", "check", str(path))
    assert res.exit_code == 2
    assert "holds 2 symbols (AAPL, MSFT); pick one with --symbol NAME" in res.stderr
    assert res.stdout == ""
    res = cli("data", "check", str(path), "--symbol", "msft", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["symbol"] == "MSFT"

    days = [f"{d:02d}/{m:02d}/2019" for m in range(1, 13) for d in range(1, 13)]
    ambiguous = tmp_path / "ambiguous.csv"
    ambiguous.write_text("Date,Close\n" + "".join(f"{d},{10 + i}\n" for i, d in enumerate(days)))
    res = cli("data", "check", str(ambiguous))
    assert res.exit_code == 2 and "every date reads both day-first and month-first" in res.stderr
    res = cli("data", "check", str(ambiguous), "--date-format", "month-first", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["first"], doc["date_order_reason"]) == ("2019-01-01", "date_format")
    assert doc["time_format"] == "MM/DD/YYYY"


def test_data_check_bad_file_is_one_line_exit_2(cli, tmp_path: Path) -> None:
    path = forex_export(tmp_path / "fx.csv")
    text = path.read_text().splitlines()
    text[150] = text[150].replace(":00:00.000", ":61:00.000")
    path.write_text("\n".join(text) + "\n")
    res = cli("data", "check", str(path))
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0
    assert (
        "line 151: column Gmt time: '" in res.stderr
        and ":61:00.000' is not a date/time" in res.stderr
    )


def test_data_check_too_short_for_the_split_says_so(cli, tmp_path: Path) -> None:
    res = cli("data", "check", str(DATA / "yahoo_daily.csv"))
    assert res.exit_code == 2
    assert "Adj Close" in res.stdout  # the file itself was read and shown
    assert "14 rows are too few for window 32" in res.stderr


_NO_TORCH = """
import sys, time
from perfmode.cli import app
start = time.monotonic()
try:
    app(sys.argv[1:])
except SystemExit as e:
    print("exit", e.code, "torch" in sys.modules, round(time.monotonic() - start, 2))
"""


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_bad_file_fails_before_torch_is_imported(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Close\n2021-01-04,1\n2021-01-05,n/a\n")
    args = ["--data", str(bad), "--home", str(tmp_path / "home")]
    if command == "evaluate":
        args += ["--baseline", "buy-and-hold"]
    out = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, command, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    exit_code, torch_loaded, seconds = out.stdout.split()[1:]
    assert (exit_code, torch_loaded) == ("2", "False"), out.stdout + out.stderr
    assert "line 3: Close is 'n/a', not a number" in out.stderr
    assert not (tmp_path / "home").exists()  # nothing written
    print(f"{command} refused the file in {seconds} s")


def test_train_and_evaluate_a_picked_symbol_and_log_the_data_once(
    home: Home, tmp_path: Path
) -> None:
    path = long_multi_symbol(tmp_path / "long.csv")
    config = write_config(tmp_path / "tiny.yaml")
    common = ["--home", str(home.root), "--data", str(path)]
    res = run_perfmode("train", "--config", str(config), "--timesteps", "128", *common, timeout=300)
    assert res.returncode == 2 and "holds 2 symbols (AAPL, MSFT)" in res.stderr

    res = run_perfmode(
        "train",
        "--config",
        str(config),
        "--timesteps",
        "128",
        "--symbol",
        "MSFT",
        *common,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    log = home.log_file("default").read_text(encoding="utf-8")
    assert log.count("📈 Data ") == 1
    assert f"Data {path}: 150 rows 2020-01-01 .. " in log and "symbol MSFT" in log
    # The checkpoint remembers the symbol, so evaluating it reads the same rows.
    res = run_perfmode("evaluate", "--checkpoint", "latest", *common, "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("📈 Data ") == 1 and "symbol MSFT" in res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["read"]["symbol"] == "MSFT" and data["rows"] == 150
