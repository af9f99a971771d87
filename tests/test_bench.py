"""``perfmode bench`` as a user runs it: real trainer and plain-SB3 processes, short runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from perfmode.cli import app
from tests.conftest import PERFMODE, run_perfmode, wait_for
from tests.trainkit import write_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROW = re.compile(r"^(quiet|performance|plain SB3)\s+([\d,]+)\s+([\d.]+)\s+([\d,]+) MiB$")
RATIO = re.compile(r"^performance / (quiet|plain SB3)\s+([\d.]+)×")


class Places:
    """The user's home (also the current directory), the system temp dir, a tiny config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.user = root / "user"
        self.tmp = root / "tmp"
        self.user.mkdir()
        self.tmp.mkdir()
        # No checkpoints in a short bench: they would be most of its time.
        self.config = write_config(root / "tiny.yaml", training={"checkpoint_freq": 10**9})

    @property
    def env(self) -> dict[str, str | None]:
        return {"PERFMODE_HOME": str(self.user), "TMPDIR": str(self.tmp)}

    def bench(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_perfmode(
            "bench", "--config", str(self.config), *args, timeout=600, env=self.env, cwd=self.user
        )

    def leftovers(self) -> list[str]:
        """Bench temp homes still on disk and processes still running from one."""
        left = [str(p) for p in self.tmp.glob("perfmode-bench-*")]
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(self.tmp) in cmdline:
                left.append(f"pid {proc.pid}: {cmdline}")
        return left


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Places:
    return Places(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def table_run(places: Places) -> tuple[subprocess.CompletedProcess[str], Path]:
    plot = places.root / "charts" / "bench.png"
    plot.parent.mkdir()
    return places.bench("--minutes", "0.3", "--plot", str(plot)), plot


def test_table_has_a_row_per_mode_and_plain_sb3_with_real_figures(table_run) -> None:
    result, _ = table_run
    assert result.returncode == 0, result.stderr
    rows = {m[1]: m for line in result.stdout.splitlines() if (m := ROW.match(line))}
    assert set(rows) == {"quiet", "performance", "plain SB3"}, result.stdout
    for label, m in rows.items():
        steps, cores, mib = (float(g.replace(",", "")) for g in m.groups()[1:])
        assert steps > 0, f"{label} measured no steps:\n{result.stdout}"
        assert cores > 0 and mib > 50, result.stdout
    ratios = {m[1] for line in result.stdout.splitlines() if (m := RATIO.match(line))}
    assert ratios == {"quiet", "plain SB3"}, result.stdout
    assert "Machine: " in result.stdout and "torch " in result.stdout
    assert "Other programs used" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_bench_leaves_no_process_no_temp_home_and_nothing_in_the_users_home(
    table_run, places: Places
) -> None:
    result, _ = table_run
    assert result.returncode == 0, result.stderr
    assert places.leftovers() == []
    assert list(places.user.iterdir()) == []


def test_plot_is_a_png_of_the_run(table_run) -> None:
    result, plot = table_run
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert f"Plot: {plot}" in result.stdout


def test_json_without_reference(places: Places) -> None:
    result = places.bench("--minutes", "0.1", "--no-reference", "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) >= {"rows", "ratios", "machine", "foreign_cpu", "plan", "segments"}
    rows = report["rows"]
    assert rows["plain_sb3"] is None and report["ratios"]["performance/plain_sb3"] is None
    for mode in ("quiet", "performance"):
        assert set(rows[mode]) >= {
            "steps_per_s",
            "cpu_cores",
            "peak_memory_mib",
            "gpu_util_pct",
            "gpu_mem_used_mib",
        }
        assert rows[mode]["windows"] == 2 and rows[mode]["cpu_cores"] > 0
    assert set(report["ratios"]["performance/quiet"]) == {
        "steps_per_s",
        "cpu_cores",
        "peak_memory_mib",
    }
    assert report["machine"]["device"] == "cpu" and report["machine"]["gpu"] is None
    assert [s["mode"] for s in report["segments"]] == ["quiet", "performance"] * 2
    assert report["plan"]["reference_seconds"] == 0
    assert places.leftovers() == []


def test_ctrl_c_stops_the_trainer_and_exits_130(places: Places) -> None:
    env = {**os.environ, **places.env, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*PERFMODE, "bench", "--config", str(places.config), "--minutes", "5"],
        cwd=places.user,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:

        def trainer_pid() -> int | None:
            for status in places.tmp.glob("perfmode-bench-*/runs/default/status.json"):
                try:
                    return json.loads(status.read_text())["pid"]
                except (OSError, ValueError, KeyError):
                    return None
            return None

        pid = wait_for("the bench's trainer to start", trainer_pid, timeout=300)
        children = psutil.Process(proc.pid).children(recursive=True)
        names = [" ".join(c.cmdline()) for c in children]
        assert any("perfmode.bench.reference" in n for n in names), names  # plain SB3 waits
        assert pid in [c.pid for c in children]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and len(err.strip().splitlines()) == 1 and "Interrupted" in err
    assert not any(c.is_running() for c in children)
    assert places.leftovers() == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--plot", "chart.jpg"], "ending in .png"),
        (["--plot", "no-such-folder/chart.png"], "does not exist"),
        (["--config", "missing.yaml"], "does not exist"),
        (["--data", "prices.csv"], "no close column"),
        (["--minutes", "0"], "--minutes"),
    ],
)
def test_bad_input_fails_in_one_line_before_anything_starts(
    places: Places, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    (places.root / "prices.csv").write_text("Date,Volume\n2024-01-02,100\n")
    monkeypatch.chdir(places.user)
    monkeypatch.setattr(tempfile, "tempdir", str(places.tmp))
    args = [str(places.root / a) if a.endswith((".csv", ".yaml")) else a for a in args]
    result = CliRunner().invoke(app, ["bench", *args], env={"PERFMODE_HOME": str(places.user)})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert result.stdout == ""
    assert places.leftovers() == [] and list(places.user.iterdir()) == []
