"""metrics.csv across perfmode versions: a run's rows stay in one file, none is lost."""

from __future__ import annotations

import csv
from pathlib import Path

from perfmode.status.progress import METRICS_FIELDS, MetricsCsv

OLD_HEADER = "time,timesteps,mode,batch_size,n_epochs,fps,cpu_cores,ep_rew_mean"
OLD_ROWS = [
    "2026-11-26T20:00:00+00:00,4096,quiet,128,4,1500.0,0.5,-0.2",
    "2026-11-26T20:00:03+00:00,8192,performance,128,4,3400.0,1.0,",
]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_an_old_header_gains_the_gpu_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("\r\n".join([OLD_HEADER, *OLD_ROWS]) + "\r\n")
    metrics = MetricsCsv(path)
    metrics.append({"time": "t3", "timesteps": 12288, "mode": "quiet", "gpu_temp_c": 71})
    got = rows(path)
    assert list(got[0]) == METRICS_FIELDS
    assert [r["timesteps"] for r in got] == ["4096", "8192", "12288"]
    assert got[1]["fps"] == "3400.0" and got[1]["gpu_temp_c"] == ""
    assert got[2]["gpu_temp_c"] == "71" and got[2]["fps"] == ""
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temp file left


def test_a_newer_file_keeps_the_columns_this_version_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    header = [*METRICS_FIELDS, "reason"]
    path.write_text(",".join(header) + "\r\n" + ",".join(["x"] * len(header)) + "\r\n")
    inode = path.stat().st_ino
    MetricsCsv(path).append({"timesteps": 5, "mode": "quiet"})
    assert path.stat().st_ino == inode  # appended to, not rewritten
    got = rows(path)
    assert list(got[1]) == header
    assert (got[1]["timesteps"], got[1]["reason"]) == ("5", "")


def test_a_file_that_is_no_metrics_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"\x00\xffnot a csv at all\n")
    MetricsCsv(path).append({"timesteps": 1})
    assert [r["timesteps"] for r in rows(path)] == ["1"]
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("metrics-")]
    assert len(aside) == 1 and aside[0].read_bytes() == b"\x00\xffnot a csv at all\n"


def test_a_new_file_gets_todays_header(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r" / "metrics.csv"
    MetricsCsv(path).append({"timesteps": 1, "gpu_util_pct": 97})
    assert rows(path) == [
        {**dict.fromkeys(METRICS_FIELDS, ""), "timesteps": "1", "gpu_util_pct": "97"}
    ]
