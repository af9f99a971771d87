"""What the page may run and stop: a `perfmode train` it builds itself, and only its own trainers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from perfmode.errors import PerfmodeError, UsageError
from perfmode.status.file import write_status
from perfmode.web.launcher import (
    BUILTIN_CONFIG,
    Launcher,
    last_line,
    list_configs,
    train_command,
    trainer_target,
)
from perfmode.web.snapshot import build_snapshot


def test_configs_offered_are_the_homes_yaml_files(home: Home, tmp_path: Path) -> None:
    (home.root / "b.yaml").write_text("{}")
    (home.root / "a.yml").write_text("{}")
    (home.root / "notes.txt").write_text("")
    (home.root / "configs").mkdir()
    (home.root / "configs" / "gpu.yaml").write_text("{}")
    (home.root / "configs" / "sub").mkdir()
    (home.root / "configs" / "sub" / "deep.yaml").write_text("{}")
    assert list_configs(home) == [BUILTIN_CONFIG, "a.yml", "b.yaml", "configs/gpu.yaml"]


def test_the_command_is_built_from_a_checked_run_and_a_listed_config(home: Home) -> None:
    (home.root / "configs").mkdir()
    (home.root / "configs" / "gpu.yaml").write_text("{}")
    assert train_command(home, "night-1", "configs/gpu.yaml") == [
        sys.executable,
        "-m",
        "perfmode",
        "train",
        "--home",
        str(home.root),
        "--run",
        "night-1",
        "--config",
        str(home.root / "configs" / "gpu.yaml"),
    ]
    assert "--config" not in train_command(home, "r", BUILTIN_CONFIG)
    with pytest.raises(UsageError, match="not allowed"):
        train_command(home, "r; rm -rf ~", BUILTIN_CONFIG)
    with pytest.raises(UsageError, match="not one of this home's configs"):
        train_command(home, "r", "configs/../../x.yaml")


@pytest.mark.parametrize(
    ("cmdline", "cwd", "env_home", "target"),
    [
        (
            ["/v/bin/python", "-m", "perfmode", "train", "--home", "/h", "--run", "x"],
            "/",
            None,
            ("/h", "x"),
        ),
        (["/v/bin/python", "/v/bin/perfmode", "train", "--home=/h"], "/", None, ("/h", "default")),
        (["/v/bin/perfmode", "train", "--run", "x"], "/h", None, ("/h", "x")),
        (["/v/bin/perfmode", "train", "--home", "h"], "/w", None, ("/w/h", "default")),
        (["/v/bin/perfmode", "train"], "/w", "/h", ("/h", "default")),
        (["/v/bin/perfmode", "ui", "--home", "/h"], "/", None, None),
        (["/v/bin/python", "-m", "perfmode", "schedule"], "/", None, None),
        (["/usr/bin/sleep", "100"], "/h", None, None),
        (["/v/bin/python", "train.py", "--home", "/h"], "/h", None, None),
    ],
)
def test_trainer_command_lines_are_recognised(cmdline, cwd, env_home, target) -> None:
    found = trainer_target(cmdline, cwd, env_home)
    expected = None if target is None else (Path(target[0]).resolve(), target[1])
    assert found == expected


def test_stop_refuses_a_pid_that_is_not_this_homes_trainer(home: Home) -> None:
    # A status.json that names a live process which is not a trainer (a reused pid, or a
    # planted file): the page must not signal it.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        home.run_dir("default").mkdir(parents=True)
        write_status(
            home.status_file("default"),
            {"pid": other.pid, "state": "training", "heartbeat": format_time(utc_now())},
        )
        with pytest.raises(PerfmodeError, match="not a perfmode trainer of this home"):
            Launcher(home).stop("default")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_line_that_says_how_a_trainer_ended(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    out.write_text(
        "⚙️ Performance mode: quiet\nError: cfg.yaml: config: modes.quiet.cpu_share is 0.0; "
        "it must be from 0.05 to 1\n\x1b[0m\n"
    )
    assert last_line(out, prefer_error=True).startswith("Error: cfg.yaml: config: modes.quiet")
    out.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    assert last_line(out, prefer_error=True) == "RuntimeError: boom"
    assert last_line(tmp_path / "missing.log", prefer_error=True) is None


def test_a_home_that_cannot_be_read_becomes_a_line(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(_home: Home) -> dict:
        raise PermissionError(13, "Permission denied", str(home.runs_dir))

    monkeypatch.setattr("perfmode.web.snapshot.build_status", unreadable)
    snap = build_snapshot(home, Launcher(home))
    assert snap["status"] is None
    assert snap["problem"].startswith(f"cannot read the home {home.root}: [Errno 13]")
    json.dumps(snap)
