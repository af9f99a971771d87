"""Reading a big price file: load time and peak memory against the size of the data.

Linux only (it reads the peak RSS from /proc). Writes a 5-million-row forex export (``Gmt time,Open,High,Low,Close,Volume`` with day-first
``13.01.2017 00:00:00.000`` stamps, the layout of the issue that misread them) to a temp
folder, then loads it in a fresh process with ``read_prices`` and reports the wall time and
how far the process's peak RSS rose above what the imports alone take.

    .venv/bin/python benchmarks/bench_data.py [--rows N] [--layout forex|iso]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_LOAD = """
import json, sys, time
from pathlib import Path
from perfmode.env.pricefile import read_prices

def peak_kib():
    # VmHWM belongs to this process's memory since exec; ru_maxrss would start from the
    # parent's peak (the file generator's).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

base = peak_kib()
t0 = time.perf_counter()
prices = read_prices(sys.argv[1])
seconds = time.perf_counter() - t0
peak = peak_kib()
s = prices.summary
print(json.dumps({"seconds": seconds, "base_kib": base, "peak_kib": peak, "rows": s.rows,
                  "order": s.date_order, "result_bytes": prices.close.nbytes + prices.time.nbytes}))
"""


def write_export(path: Path, rows: int, layout: str) -> None:
    """A fixed-width export built as a byte matrix: seconds for millions of rows."""
    rng = np.random.default_rng(0)
    minutes = np.datetime64("2010-01-04T00:00") + np.arange(rows) * np.timedelta64(1, "m")
    iso = minutes.astype("datetime64[m]").astype("S16").view(np.uint8).reshape(rows, 16)
    if layout == "forex":
        header = b"Gmt time,Open,High,Low,Close,Volume\n"
        # DD.MM.YYYY hh:mm:ss.fff from YYYY-MM-DDThh:mm
        stamp = np.concatenate(
            [iso[:, 8:10], b"."[0] + np.zeros((rows, 1), np.uint8), iso[:, 5:7]], axis=1
        )
        stamp = np.concatenate(
            [stamp, np.full((rows, 1), ord(".")), iso[:, 0:4], np.full((rows, 1), ord(" "))], axis=1
        )
        stamp = np.concatenate(
            [stamp, iso[:, 11:16], np.frombuffer(b":00.000", np.uint8)[None].repeat(rows, 0)],
            axis=1,
        )
    else:
        header = b"Date,Open,High,Low,Close,Volume\n"
        stamp = np.concatenate(
            [
                iso[:, :10],
                np.full((rows, 1), ord(" ")),
                iso[:, 11:16],
                np.frombuffer(b":00", np.uint8)[None].repeat(rows, 0),
            ],
            axis=1,
        )
    # Prices 1.00010 .. 9.99990 written as d.ddddd, a random walk in 0.00001 steps.
    price = (500_000 + np.cumsum(rng.integers(-20, 21, rows))).clip(100_010, 999_990)
    fields = [stamp.astype(np.uint8)]
    for shift in (0, 7, -7, 3):  # open, high, low, close: d.ddddd
        p = (price + shift).astype("S7").view(np.uint8).reshape(rows, 7)
        text = np.concatenate([p[:, :1], np.full((rows, 1), ord(".")), p[:, 1:6]], axis=1)
        fields += [np.full((rows, 1), ord(",")), text]
    volume = rng.integers(100_000, 999_999, rows).astype("S6").view(np.uint8).reshape(rows, 6)
    fields += [np.full((rows, 1), ord(",")), volume, np.full((rows, 1), ord("\n"))]
    matrix = np.concatenate([f.astype(np.uint8) for f in fields], axis=1)
    with path.open("wb") as f:
        f.write(header)
        f.write(matrix.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--layout", choices=["forex", "iso"], default="forex")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfmode-bench-data-") as tmp:
        path = Path(tmp) / f"{args.layout}.csv"
        write_export(path, args.rows, args.layout)
        size = path.stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True
        )
    if out.returncode:
        sys.exit(f"loading failed:\n{out.stderr}")
    r = json.loads(out.stdout)
    rise = (r["peak_kib"] - r["base_kib"]) * 1024
    mib = 1024 * 1024
    print(f"read_prices, {r['rows']:,} rows ({args.layout} layout, {size / mib:,.0f} MiB file)")
    print(f"load time                          {r['seconds']:8.2f} s")
    print(f"peak RSS above the imports         {rise / mib:8.0f} MiB")
    print(f"  vs the file                      {rise / size:8.2f} x")
    print(f"  vs the result (close + time)     {rise / r['result_bytes']:8.2f} x")
    print(f"date order                         {r['order']}")


if __name__ == "__main__":
    main()
