"""metrics.csv as the page's charts get it: incremental, whole lines only, resumes folded."""

from __future__ import annotations

import os
from pathlib import Path

from perfmode.status.progress import METRICS_FIELDS, MetricsCsv
from perfmode.web.metrics import MAX_POINTS, MetricsTail


def row(steps: int, mode: str = "quiet", fps: float = 100.0, rew: object = -0.5) -> dict:
    return {
        "time": "2026-11-26T20:00:00+00:00",
        "timesteps": steps,
        "mode": mode,
        "batch_size": 128,
        "n_epochs": 4,
        "fps": fps,
        "cpu_cores": 0.5,
        "ep_rew_mean": rew,
    }


def test_rows_are_read_as_they_are_appended(tmp_path: Path) -> None:
    csv = MetricsCsv(tmp_path / "metrics.csv")
    tail = MetricsTail(csv.path)
    assert tail.poll() == (False, 0)
    csv.append(row(100))
    csv.append(row(200, rew=""))  # no episode finished yet: a gap, not a zero
    assert tail.poll() == (False, 0)
    cols = tail.series.columns()
    assert cols["steps"] == [100, 200] and cols["ep_rew_mean"] == [-0.5, None]
    csv.append(row(300, "performance", fps=250))
    assert tail.poll() == (False, 2)
    assert tail.series.columns(2) == {
        "steps": [300],
        "time": ["2026-11-26T20:00:00+00:00"],
        "mode": ["performance"],
        "fps": [250],
        "cpu_cores": [0.5],
        "ep_rew_mean": [-0.5],
    }
    assert tail.poll() == (False, 3)  # nothing new


def test_a_row_being_written_waits_for_its_newline(tmp_path: Path) -> None:
    csv = MetricsCsv(tmp_path / "metrics.csv")
    tail = MetricsTail(csv.path)
    with open(csv.path, "a") as f:
        f.write("2026-11-26T20:00:00+00:00,100,quiet,128,4,1")
    tail.poll()
    assert len(tail.series) == 0
    with open(csv.path, "a") as f:
        f.write("50.0,0.5,-0.1\n")
    tail.poll()
    assert tail.series.columns()["fps"] == [150.0]


def test_a_resume_drops_the_rows_it_redoes(tmp_path: Path) -> None:
    csv = MetricsCsv(tmp_path / "metrics.csv")
    tail = MetricsTail(csv.path)
    for steps in (100, 200, 300):
        csv.append(row(steps))
    tail.poll()
    # Stopped at 300, resumed from the checkpoint at 200: the next update ends at 300 again.
    csv.append(row(300, "performance"))
    csv.append(row(400, "performance"))
    reset, _ = tail.poll()
    assert reset  # the page had the row at 300: it must take the series again
    cols = tail.series.columns()
    assert cols["steps"] == [100, 200, 300, 400]
    assert cols["mode"] == ["quiet", "quiet", "performance", "performance"]


def test_a_fresh_start_in_the_same_file_shows_only_the_new_attempt(tmp_path: Path) -> None:
    csv = MetricsCsv(tmp_path / "metrics.csv")
    tail = MetricsTail(csv.path)
    for steps in (100, 200, 300):
        csv.append(row(steps))
    tail.poll()
    csv.append(row(100, "performance"))
    assert tail.poll() == (True, 0)
    assert tail.series.columns()["steps"] == [100]


def test_garbage_is_skipped_and_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    csv = MetricsCsv(path)
    csv.append(row(100))
    with open(path, "a") as f:
        f.write('not,a,"row\n\x00\xff\n,,,,\n')
    csv.append(row(200))
    tail = MetricsTail(path)
    tail.poll()
    assert tail.series.columns()["steps"] == [100, 200]

    replacement = tmp_path / "new.csv"
    MetricsCsv(replacement).append(row(50))
    os.replace(replacement, path)
    assert tail.poll() == (True, 0)
    assert tail.series.columns()["steps"] == [50]
    path.unlink()
    assert tail.poll() == (True, 0)
    assert len(tail.series) == 0


def test_a_long_run_is_thinned_but_every_switch_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    lines = [",".join(METRICS_FIELDS)]
    switches = {1001: "performance", 1002: "quiet", 25_000: "performance"}
    mode = "quiet"
    for i in range(1, 40_001):
        mode = switches.get(i, mode)
        lines.append(f"t,{i * 100},{mode},128,4,{i},0.5,0")
    path.write_text("\n".join(lines) + "\n")
    tail = MetricsTail(path)
    tail.poll()
    cols = tail.series.columns(0, MAX_POINTS)
    assert len(cols["steps"]) <= MAX_POINTS + 6
    assert cols["steps"][-1] == 4_000_000
    # Both sides of each switch are there, so each stretch starts and ends where it did.
    for i, m in switches.items():
        at = cols["steps"].index(i * 100)
        assert cols["mode"][at] == m and cols["steps"][at - 1] == (i - 1) * 100
