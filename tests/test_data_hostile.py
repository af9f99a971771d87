"""Price files that try to hang, flood or fool `perfmode data check`: each ends in one short
line (or a good read), at once."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import warnings
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.env.pricefile import MAX_PRICE, MIN_PRICE
from tests.trainkit import write_config

ROWS = "".join(f"2020-01-{d:02d},{100 + d}\n" for d in range(1, 29))


def _one_line(out, *words: str) -> None:
    assert out.exit_code == 2, out.output
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("Error: "), out.stderr[:500]
    assert len(out.stderr) < 1000, len(out.stderr)
    for w in words:
        assert w in out.stderr, out.stderr


def test_a_fifo_is_refused_without_opening_it(cli, home: Home, tmp_path: Path) -> None:
    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)
    _one_line(cli("data", "check", str(fifo)), "FIFO", "not a regular file")


@pytest.mark.parametrize("what", ["columns", "cell"])
def test_a_huge_header_or_cell_gives_a_short_line(
    cli, home: Home, tmp_path: Path, what: str
) -> None:
    path = tmp_path / "prices.csv"
    if what == "columns":  # 1,000,000 columns, none a close
        path.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ROWS)
        _one_line(cli("data", "check", str(path)), "no close column", "more")
    else:  # a 50 MB cell where a price belongs
        path.write_text("Date,Close\n" + ROWS + "2020-02-01," + "x" * 50_000_000 + "\n")
        _one_line(cli("data", "check", str(path)), "line 30", "not a number")


def test_wide_rows_with_good_dates_are_read(cli, home: Home, tmp_path: Path) -> None:
    n = 10_000  # each line longer than the part of the file looked at first
    header = ",".join(["Date", *(f"c{i}" for i in range(n - 2)), "Close"])
    days = [date(2020, 1, 1) + timedelta(days=d) for d in range(80)]
    rows = [
        ",".join([day.isoformat(), *["1"] * (n - 2), str(100 + i)]) for i, day in enumerate(days)
    ]
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    out = cli("data", "check", str(path))
    assert out.exit_code == 0, out.stderr
    assert "2020-01-01 .. 2020-03-20" in out.stdout, out.stdout


@pytest.mark.parametrize("price", ["1e308", "1e-320", "1e13", "inf"])
def test_prices_outside_the_accepted_range_are_refused(
    cli, home: Home, tmp_path: Path, price: str
) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("Date,Close\n" + ROWS + f"2020-02-01,{price}\n")
    _one_line(cli("data", "check", str(path)), "line 30")
    if price != "inf":
        assert f"{MIN_PRICE:g}" in cli("data", "check", str(path)).stderr
        assert f"{MAX_PRICE:g}" in cli("data", "check", str(path)).stderr


@pytest.mark.parametrize("price", ["1e308", "1e-320"])
@pytest.mark.parametrize("given", ["--data", "config"])
def test_evaluate_refuses_prices_outside_the_range_in_one_line_without_warnings(
    cli, home: Home, tmp_path: Path, price: str, given: str
) -> None:
    # Rows enough to evaluate: without the range check it would print figures (and numpy's
    # overflow warnings) computed from the planted price, and exit 0.
    rows = "".join(f"{date(2020, 1, 1) + timedelta(days=i)},{100 + i % 7}\n" for i in range(200))
    path = tmp_path / "prices.csv"
    path.write_text("Date,Close\n" + rows + f"2020-07-19,{price}\n")
    if given == "--data":
        args = ["--data", str(path)]
    else:
        args = ["--config", str(write_config(tmp_path / "c.yaml", env={"data": str(path)}))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # numpy's overflow and underflow warnings included
        out = cli("evaluate", "--baseline", "buy-and-hold", *args)
    _one_line(out, "line 202", f"{MIN_PRICE:g}", f"{MAX_PRICE:g}")
    assert [str(w.message) for w in caught] == []
    assert out.stdout == ""


def _zip(path: Path, data: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("prices.csv", data)


@pytest.mark.parametrize(
    ("suffix", "pack", "name"),
    [
        (".csv.gz", gzip.compress, "gzip"),
        (".csv.bz2", bz2.compress, "bzip2"),
        (".csv.xz", lzma.compress, "xz"),
        (".zip", None, "zip"),
    ],
)
def test_a_compressed_file_is_said_to_be_compressed(
    cli, home: Home, tmp_path: Path, suffix: str, pack, name: str
) -> None:
    path = tmp_path / f"prices{suffix}"
    data = ("Date,Close\n" + ROWS).encode()
    if pack is None:
        _zip(path, data)
    else:
        path.write_bytes(pack(data))
    _one_line(cli("data", "check", str(path)), f"{name}-compressed", "decompress it")
    assert "UTF-8" not in cli("data", "check", str(path)).stderr


def test_text_from_the_file_is_shown_not_obeyed(cli, home: Home, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    rows = "".join(f"2020-01-{d:02d},X\x1b[2J\x07,{100 + d}\n" for d in range(1, 29))
    path.write_text("Date,Symbol,Close\n" + rows * 3)
    out = cli("data", "check", str(path))
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout, out.stdout
    assert "\\x1b[2J" in out.stdout or "\\x1b[2J" in out.stderr, out.output
