from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfmode.home import Home
from tests.conftest import run_perfmode


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


WRITER = """
import sys
from perfmode.cli import app
home, n, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    mode = ("quiet", "performance")[(i + offset) % 2]
    try:
        app(["set", mode, "--home", home], standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
"""


def test_concurrent_writers_never_expose_a_partial_file(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet", "kept_by_hand": "yes"}')
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home.root), "40", str(i)],
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
