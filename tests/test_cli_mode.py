from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfmode.base.home import Home
from tests.conftest import SET_WRITER, run_perfmode
from tests.trainkit import write_config


def test_set_writes_the_mode_and_says_who_and_when(cli, home: Home) -> None:
    result = cli("set", "performance")
    assert result.exit_code == 0, result.output
    assert "Mode: performance (set by cli" in result.output
    assert json.loads(home.settings.read_text())["performance_mode"] == "performance"


def test_set_unknown_mode_leaves_the_file_alone(cli, home: Home) -> None:
    home.settings.write_text('{"performance_mode": "performance"}')
    before = home.settings.read_bytes()
    result = cli("set", "turbo")
    assert result.exit_code == 2
    assert "quiet" in result.stderr and "performance" in result.stderr
    assert home.settings.read_bytes() == before


def test_status_json_has_the_documented_keys(cli, home: Home) -> None:
    cli("set", "performance")
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requested_mode"] == "performance"
    assert report["changed_by"] == "cli"
    assert report["changed_at"].endswith("Z")
    assert report["settings_ok"] is True
    assert report["settings_problem"] is None
    assert report["trainer"] is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty"),
        ('{"performance_mode": "perfor', "not valid JSON"),
        ("[]", "not an object"),
        ('{"performance_mode": "fast"}', "valid modes"),
    ],
)
def test_status_reports_a_bad_file_and_still_exits_0(cli, home: Home, content, problem) -> None:
    if content is not None:
        home.settings.write_text(content)
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requested_mode"] == "quiet"
    assert report["settings_ok"] is False
    assert problem in report["settings_problem"]
    human = cli("status")
    assert human.exit_code == 0, human.output
    assert "PROBLEM" in human.output and problem in human.output


def test_home_comes_from_env_when_no_flag(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    proc = run_perfmode(
        "set", "performance", cwd=tmp_path, env={"PERFMODE_HOME": str(tmp_path / "h")}
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "h" / "settings.json").exists()
    assert not (tmp_path / "settings.json").exists()


def test_home_defaults_to_current_directory(tmp_path: Path) -> None:
    proc = run_perfmode("set", "quiet", cwd=tmp_path, env={"PERFMODE_HOME": None})
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "settings.json").read_text())["performance_mode"] == "quiet"


def test_set_and_status_do_not_import_torch(home: Home) -> None:
    code = (
        "import sys\n"
        "from perfmode.cli import app\n"
        "for args in (['set', 'performance'], ['status', '--json']):\n"
        f"    app([*args, '--home', {str(home.root)!r}], standalone_mode=False)\n"
        "heavy = [m for m in ('torch', 'stable_baselines3', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_library_never_imports_typer() -> None:
    """Only perfmode.cli may: every import statement elsewhere, at any depth, is read."""
    import ast

    import perfmode

    root = Path(perfmode.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[0] in ("cli", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(root)}: {n}"
                for n in names
                if n.split(".")[0] in ("typer", "click") or n.startswith("perfmode.cli")
            ]
    assert offenders == []


def test_concurrent_writers_never_expose_a_partial_file(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet", "kept_by_hand": "yes"}')
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", SET_WRITER, str(home.root), "40", str(i)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        data = json.loads(home.settings.read_bytes())  # must always parse
        assert data["performance_mode"] in ("quiet", "performance")
        assert data["kept_by_hand"] == "yes"
        reads += 1
        time.sleep(0.001)
    for w in writers:
        assert w.wait() == 0, w.stderr.read()
    final = json.loads(home.settings.read_text())
    assert final["performance_mode"] in ("quiet", "performance")
    assert final["kept_by_hand"] == "yes"
    assert final["changed_by"] == "cli"
    assert reads > 10
    assert [p.name for p in home.root.iterdir() if p.name.endswith(".tmp")] == []


def test_train_on_bad_input_exits_2_and_leaves_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  n_envs: 0\n")
    for args in (["--config", str(bad)], ["--data", str(tmp_path / "missing.csv")]):
        proc = run_perfmode("train", "--home", str(home), *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ")
    assert list(home.iterdir()) == []


# --- hostile files and homes: one line, never a hang or a traceback --------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_status_and_set_with_a_fifo_as_settings_json_answer_at_once(home: Home) -> None:
    fifo = home.root / "elsewhere.fifo"
    os.mkfifo(fifo)
    home.settings.symlink_to(fifo)
    status = run_perfmode("status", "--home", str(home.root), timeout=120)
    assert status.returncode == 0, status.stderr
    assert "FIFO (named pipe), not a regular file; using quiet" in status.stdout
    result = run_perfmode("set", "performance", "--home", str(home.root), timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Move it away" in result.stderr
    assert home.settings.is_symlink()


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"performance_mode": "quiet", "n": ' + b"9" * 5000 + b"}"],
    ids=["deep", "digits"],
)
def test_status_and_set_survive_extreme_json(home: Home, raw: bytes) -> None:
    home.settings.write_bytes(raw)
    status = run_perfmode("status", "--json", "--home", str(home.root))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["settings_ok"] is False
    result = run_perfmode("set", "performance", "--home", str(home.root))
    assert result.returncode == 0, result.stderr
    assert [p.read_bytes() for p in home.root.glob("settings.json.corrupt-*")] == [raw]


def test_status_says_a_changed_at_in_the_future_is_in_the_future(cli, home: Home) -> None:
    data = {"performance_mode": "performance", "changed_by": "cli", "changed_to": "performance"}
    home.settings.write_text(json.dumps({**data, "changed_at": "2999-01-01T00:00:00Z"}))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "in the future (check the clock)" in result.output
    assert " 0 s ago" not in result.output
    home.settings.write_text(json.dumps({**data, "changed_at": "9999-12-31T23:59:59-05:00"}))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "set by cli, at an unknown time" in result.output


@pytest.mark.parametrize("home_dir", ["/proc/no-such-home", "/sys/kernel"])
def test_a_home_that_cannot_be_written_is_one_line_at_once(home_dir: str) -> None:
    # /proc/...: a folder that cannot be made; /sys/kernel: one that exists and that even
    # root cannot write in.
    if not Path(home_dir).parent.is_dir():
        pytest.skip(f"no {Path(home_dir).parent}")
    proc = run_perfmode("set", "quiet", "--home", home_dir, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"cannot write in {home_dir}" in proc.stderr
    assert "held by another writer" not in proc.stderr  # no lock was ever involved
    status = run_perfmode("status", "--home", home_dir, timeout=120)
    # A home that is there shows its (empty) status; one that is not is a usage error.
    assert status.returncode == (0 if Path(home_dir).is_dir() else 2), status.stderr
    assert "Traceback" not in status.stderr


def test_train_in_a_home_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys/kernel")
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_perfmode("train", "--config", str(config), "--home", "/sys/kernel", timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot make /sys/kernel/runs/default")
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_set_in_a_read_only_folder_is_one_line_at_once(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_perfmode("set", "quiet", "--home", str(ro), timeout=120)
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 1
    assert "cannot write in" in proc.stderr and "Permission denied" in proc.stderr
