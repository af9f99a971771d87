"""What a newcomer expects of any command line: one-line usage errors, --version, -h,
shell completion, examples in --help, mode names in any case."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perfmode import __version__
from perfmode.base.home import Home
from perfmode.cli import app
from tests.conftest import run_perfmode


def one_line_error(stderr: str, *needles: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    assert lines[0].count("Error") == 1, lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["set", "turbo"], ["MODE 'turbo'", "quiet, performance"]),
        (["set"], ["missing MODE", "quiet, performance"]),
        (["train", "--timesteps", "0"], ["--timesteps 0", "at least 1"]),
        (["train", "--timesteps", "-5"], ["--timesteps -5", "at least 1"]),
        (["train", "--timesteps", "abc"], ["--timesteps 'abc'", "whole number"]),
        (["train", "--timesteps", "1e6"], ["--timesteps 1e6", "whole number"]),
        (["train", "--seed", "-1"], ["--seed -1", "at least 0"]),
        (["train", "--device", "tpu"], ["--device 'tpu'", "auto, cpu, cuda"]),
        (["train", "--config", "{tmp}"], ["--config", "{tmp}", "is a directory; pass a file"]),
        (["train", "--fersh"], ["--fersh", "--fresh", "perfmode train --help"]),
        (["evaluate", "--baseline", "random"], ["--baseline 'random'", "buy-and-hold, flat"]),
        (["data", "check"], ["missing FILE"]),
        (["frobnicate"], ["'frobnicate'", "train", "status"]),
    ],
)
def test_usage_errors_typer_catches_are_one_line_exit_2_and_write_nothing(
    cli, home: Home, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, *[n.format(tmp=tmp_path) for n in needles])
    assert result.stdout == ""
    assert list(home.root.iterdir()) == []


def test_the_real_commands_print_one_line_too(tmp_path: Path) -> None:
    # A separate process, as a user runs it: nothing in-process hides Typer's own printing.
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args, needle in [
        (["set", "Turbo", "--home", str(tmp_path)], "MODE 'Turbo'"),
        (["train", "--timesteps", "1e6", "--home", str(tmp_path)], "--timesteps 1e6"),
        (["status", "--home", str(afile)], f"--home: '{afile}' is a file; pass a folder"),
    ]:
        proc = run_perfmode(*args)
        assert proc.returncode == 2, proc.stderr
        one_line_error(proc.stderr, needle)
        assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_mode_and_choice_names_in_any_case(cli, home: Home) -> None:
    result = cli("set", "PERFORMANCE")
    assert result.exit_code == 0, result.output
    assert json.loads(home.settings.read_text())["performance_mode"] == "performance"
    assert cli("set", "Quiet").exit_code == 0
    assert json.loads(home.settings.read_text())["performance_mode"] == "quiet"
    flat = cli("evaluate", "--baseline", "FLAT", "--json")
    assert flat.exit_code == 0, flat.output
    assert json.loads(flat.stdout)["policy"]["name"] == "flat"


def test_version_as_a_flag_and_as_a_command() -> None:
    for args in (["--version"], ["-V"], ["version"]):
        proc = run_perfmode(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"perfmode {__version__}\n"


COMMANDS = [
    [],
    ["train"],
    ["set"],
    ["status"],
    ["schedule"],
    ["evaluate"],
    ["data"],
    ["data", "check"],
    ["config"],
    ["config", "show"],
    ["config", "init"],
    ["bench"],
    ["version"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "perfmode")
def test_help_has_examples_plain_flags_and_h_is_help(command: list[str]) -> None:
    runner = CliRunner()
    long, short = runner.invoke(app, [*command, "--help"]), runner.invoke(app, [*command, "-h"])
    assert long.exit_code == short.exit_code == 0, long.output
    assert long.stdout == short.stdout
    assert "Example" in long.stdout
    assert "<bool>" not in long.stdout


def test_schedule_help_says_times_are_in_the_tz_zone() -> None:
    help_text = CliRunner().invoke(app, ["schedule", "--help"]).stdout
    text = " ".join(help_text.replace("│", " ").split())
    assert "local time" not in text
    assert "When performance starts (24-hour, in the --tz zone)" in text


def test_shell_completion_is_switched_on() -> None:
    script = run_perfmode("--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_PERFMODE_COMPLETE=complete_bash" in script.stdout
    # What bash asks for when the user presses Tab after `perfmode set `.
    env = {"_PERFMODE_COMPLETE": "complete_bash", "COMP_WORDS": "perfmode set ", "COMP_CWORD": "2"}
    words = run_perfmode(env={**os.environ, **env})
    assert words.returncode == 0, words.stderr
    from perfmode.base.modes import mode_names

    assert words.stdout.split() == list(mode_names())
