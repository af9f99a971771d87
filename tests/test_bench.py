"""``perfmode bench`` as a user runs it: real trainer and plain-SB3 processes, short runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from perfmode.base.platform import stop_signals
from perfmode.bench.figures import metrics_timeline
from perfmode.bench.processes import Child, one_stop
from perfmode.cli import app
from perfmode.training.stop import SAME_STOP_S
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
def real_run(places: Places) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One real bench with plain SB3: the trainer's modes and the reference, --json, --plot."""
    plot = places.root / "charts" / "bench.png"
    plot.parent.mkdir()
    return places.bench("--minutes", "0.3", "--json", "--plot", str(plot)), plot


@pytest.fixture
def report(real_run) -> dict[str, Any]:
    result, _ = real_run
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    return json.loads(result.stdout)


def test_both_modes_and_plain_sb3_are_measured_with_real_figures(report) -> None:
    rows = report["rows"]
    assert set(rows) == {"quiet", "performance", "plain_sb3"}
    for name, row in rows.items():
        assert row["steps_per_s"] > 0, f"{name} measured no steps: {row}"
        assert row["cpu_cores"] > 0 and row["peak_memory_mib"] > 50, row
        assert row["gpu_util_pct"] is None and row["gpu_mem_used_mib"] is None  # no GPU here
    assert rows["quiet"]["windows"] == rows["performance"]["windows"] == 2
    ratio = report["ratios"]["performance/quiet"]["steps_per_s"]
    assert ratio == pytest.approx(
        rows["performance"]["steps_per_s"] / rows["quiet"]["steps_per_s"], rel=1e-2
    )
    assert set(report["ratios"]["performance/plain_sb3"]) == {
        "steps_per_s",
        "cpu_cores",
        "peak_memory_mib",
    }
    assert [s["mode"] for s in report["segments"]] == ["quiet", "performance"] * 2
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"]
    assert report["foreign_cpu"]["mean_cores"] is not None
    assert report["plan"]["reference_seconds"] == pytest.approx(4.5)


def test_without_json_the_same_figures_print_as_a_table(
    report, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The printing layer on the real run's result (the run itself is the fixture's).
    monkeypatch.setattr("perfmode.bench.run_bench", lambda request, progress: report)
    out = CliRunner().invoke(app, ["bench"]).stdout
    rows = {m[1]: m for line in out.splitlines() if (m := ROW.match(line))}
    assert set(rows) == {"quiet", "performance", "plain SB3"}, out
    for label, key in (("quiet", "quiet"), ("plain SB3", "plain_sb3")):
        assert rows[label][2] == f"{report['rows'][key]['steps_per_s']:,.0f}"
    ratios = {m[1] for line in out.splitlines() if (m := RATIO.match(line))}
    assert ratios == {"quiet", "plain SB3"}, out
    assert f"Machine: {report['machine']['cores']} cores" in out
    assert "Other programs used" in out


def test_bench_leaves_no_process_no_temp_home_and_nothing_in_the_users_home(
    report, places: Places
) -> None:
    assert places.leftovers() == []
    assert list(places.user.iterdir()) == []


def test_plot_is_a_png_of_the_run(report, real_run) -> None:
    _, plot = real_run
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert report["plot"] == str(plot)


@pytest.mark.parametrize("first", ["trainer", "bench", "trainer, then bench"])
def test_ctrl_c_stops_the_trainer_and_exits_130_and_no_reference_starts_none(
    places: Places, first: str
) -> None:
    """A terminal's Ctrl-C reaches the bench and its trainer; which of them acts on it first
    is up to the scheduler, so each order is played out on its own: the trainer's copy
    alone, the bench's first, and the trainer's first with the bench's arriving only once
    the trainer has saved and exited."""
    env = {**os.environ, **places.env, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*PERFMODE, "bench", "--config", str(places.config), "--minutes", "5", "--no-reference"],
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
        assert not any("perfmode.bench.reference" in n for n in names), names  # --no-reference
        assert pid in [c.pid for c in children]
        if first == "trainer":
            # It saves and exits 0 before the bench hears of the Ctrl-C; the bench's own copy
            # is not sent at all, so the bench must take the trainer's stop for its own.
            os.kill(pid, signal.SIGINT)
        elif first == "trainer, then bench":
            # The bench's copy lands late: once the bench has reaped the trainer (seen its
            # exit), so while the bench stops, cleans up, prints or exits.
            trainer = psutil.Process(pid)
            os.kill(pid, signal.SIGINT)
            wait_for("the bench to reap its trainer", lambda: not trainer.is_running(), 300)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
        else:  # the bench stops the trainer; the terminal's copy reaches the trainer late
            os.kill(proc.pid, signal.SIGINT)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and len(err.strip().splitlines()) == 1 and "Interrupted" in err
    assert not any(c.is_running() for c in children)
    assert places.leftovers() == []


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_copy_of_one_ctrl_c_after_the_bench_began_to_stop_is_that_stop(
    tmp_path: Path,
) -> None:
    """Wherever a copy lands (the bench's cleanup, its last line, its exit), nothing raises;
    a person's second Ctrl-C, later, cuts short the wait for a child to save."""
    before = {s: signal.getsignal(s) for s in stop_signals()}
    clock = _Clock()
    ignore_sigterm = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)"
    )
    try:
        with pytest.raises(KeyboardInterrupt), one_stop(clock) as stop:
            trainer = Child("trainer", [sys.executable, "-c", "pass"], tmp_path / "t.log")
            stubborn = Child("reference", [sys.executable, "-c", ignore_sigterm], tmp_path / "r")
            wait_for("SIGTERM ignored", lambda: "ready" in stubborn.last_line(), proc=stubborn.proc)
            trainer.proc.wait()
            try:
                # The trainer heard the Ctrl-C first, saved and exited 0: the bench sees it.
                trainer.check_alive(lambda: True)
            finally:  # the bench's cleanup
                os.kill(os.getpid(), signal.SIGINT)  # the bench's own copy: nothing
                os.kill(os.getpid(), signal.SIGTERM)
                assert not stop.hurry
                clock.now += SAME_STOP_S * 2
                os.kill(os.getpid(), signal.SIGINT)  # a person's second Ctrl-C
                assert stop.hurry
                stubborn.stop()  # at once, not after STOP_TIMEOUT_S
                assert stubborn.proc.returncode == -signal.SIGKILL
        # The command's `except`, its last line, its exit: a late copy changes nothing.
        os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


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


def test_timeline_places_updates_by_their_lengths_within_the_clocks_second(
    tmp_path: Path,
) -> None:
    # metrics.csv stamps whole seconds; the chart needs better: each update's length is
    # steps / fps, and updates are back to back.
    t0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC).timestamp()
    lengths, fps = [1.25, 0.8, 2.0, 0.4, 1.1], 1000.0
    ends = list(t0 + 10.9 + np.cumsum(lengths) - lengths[0])  # the first stamp says 10 s
    lines = ["time,timesteps,mode,fps"]
    for i, end in enumerate(ends):
        stamp = datetime.fromtimestamp(int(end), UTC).isoformat(timespec="seconds")
        lines.append(f"{stamp},{round(fps * sum(lengths[: i + 1]))},quiet,{fps}")
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(lines) + "\n")
    points = metrics_timeline(path, t0)
    truth = [end - length / 2 - t0 for end, length in zip(ends, lengths, strict=True)]
    assert [p[2] for p in points] == ["quiet"] * 5
    assert all(abs(p[0] - t) <= 0.5 for p, t in zip(points, truth, strict=True)), points
    gaps = np.diff([p[0] for p in points])
    assert gaps == pytest.approx(np.diff(truth), abs=1e-3)


GPU_ROW = re.compile(
    r"^(quiet|performance|plain SB3)\s+[\d,]+\s+[\d.]+\s+[\d,]+ MiB\s+(\d+)%\s+([\d,]+) MiB$"
)


def test_on_cuda_the_table_shows_gpu_busy_and_memory_per_row(
    report, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real run's figures as a CUDA run would carry them (the GPU part is NVML's).
    cuda = json.loads(json.dumps(report))
    cuda["machine"].update(device="cuda", gpu="NVIDIA GeForce RTX 2070")
    for i, key in enumerate(("quiet", "performance", "plain_sb3")):
        cuda["rows"][key].update(gpu_util_pct=30.0 + 20 * i, gpu_mem_used_mib=1000 + i)
    monkeypatch.setattr("perfmode.bench.run_bench", lambda request, progress: cuda)
    out = CliRunner().invoke(app, ["bench"]).stdout
    rows = {m[1]: (m[2], m[3]) for line in out.splitlines() if (m := GPU_ROW.match(line))}
    assert rows == {
        "quiet": ("30", "1,000"),
        "performance": ("50", "1,001"),
        "plain SB3": ("70", "1,002"),
    }, out
    assert "device cuda (NVIDIA GeForce RTX 2070)" in out


def test_gpu_figures_are_the_mean_busy_share_and_the_peak_memory_of_the_samples() -> None:
    from perfmode.bench.figures import Tally

    tally = Tally()
    for util, mem in ((40, 900), (None, None), (60, 1200), (50, 1100)):
        tally.add_gpu(util, mem)
    row = tally.row()
    assert row["gpu_util_pct"] == 50.0 and row["gpu_mem_used_mib"] == 1200
    assert Tally().row()["gpu_util_pct"] is None  # no reading: null, not 0
