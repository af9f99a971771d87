"""The schedule daemon as a Windows task and a macOS LaunchAgent. Neither system runs here:
the files are checked against what their readers require (the Task Scheduler schema's
elements, read the way schtasks gets the file: UTF-16; a plist through plistlib) and the
command they hold is split back the way each system splits it."""

from __future__ import annotations

import plistlib
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest

from perfmode.base.home import Home
from perfmode.schedule.service import LAUNCHD_LABEL, launchd_plist, task_xml

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
HOME = r"C:\Users\Ana Lee\trading & co\zürich"
PYTHONW = r"C:\Program Files\Python312\pythonw.exe"


def windows_argv(line: str) -> list[str]:
    """Split a command line as the Microsoft C runtime does (CommandLineToArgvW's rules):
    quotes group, ``2n`` backslashes before a quote are ``n`` and the quote toggles, ``2n+1``
    are ``n`` and a literal quote; other backslashes are themselves."""
    args: list[str] = []
    cur, in_quotes, have, i = "", False, False, 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if line[i + n : i + n + 1] == '"':
                cur += "\\" * (n // 2)
                if n % 2:
                    cur += '"'
                    i += n + 1
                else:
                    i += n
                have = True
                continue
            cur += "\\" * n
            i += n
            have = True
            continue
        if c == '"':
            in_quotes, have = not in_quotes, True
        elif c in " \t" and not in_quotes:
            if have:
                args.append(cur)
            cur, have = "", False
        else:
            cur += c
            have = True
        i += 1
    if have:
        args.append(cur)
    return args


def test_the_splitter_follows_the_runtime_rules() -> None:
    assert windows_argv(r'a "b c" d\e "f\"g" "h\\" i') == ["a", "b c", r"d\e", 'f"g', "h\\", "i"]


def parse_task(text: str) -> ET.Element:
    # schtasks reads the file Out-File wrote: UTF-16 with a BOM, as the declaration says.
    assert text.startswith('<?xml version="1.0" encoding="UTF-16"?>')
    return ET.fromstring(text.encode("utf-16"))


def test_the_task_has_what_the_task_scheduler_schema_requires() -> None:
    task = parse_task(task_xml(HOME, PYTHONW, "HOST\\ana"))
    assert task.tag == f"{{{NS['t']}}}Task" and task.get("version") == "1.2"
    for path in ("RegistrationInfo", "Triggers", "Settings", "Actions", "Principals"):
        assert task.find(f"t:{path}", NS) is not None, path
    logon = task.find("t:Triggers/t:LogonTrigger", NS)
    assert logon is not None and logon.findtext("t:Enabled", namespaces=NS) == "true"
    assert logon.findtext("t:UserId", namespaces=NS) == "HOST\\ana"  # a user may register it
    settings = task.find("t:Settings", NS)
    assert settings is not None
    restart = settings.find("t:RestartOnFailure", NS)
    assert restart is not None
    interval = restart.findtext("t:Interval", namespaces=NS) or ""
    minutes = re.fullmatch(r"PT(\d+)M", interval)
    assert minutes and 1 <= int(minutes.group(1)) <= 31 * 24 * 60  # schema: PT1M..P31D
    assert 1 <= int(restart.findtext("t:Count", namespaces=NS) or 0) <= 255  # unsignedByte
    # Days of training: the default 72-hour limit would end the daemon on day three.
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=NS) == "PT0S"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    principal = task.find("t:Principals/t:Principal", NS)
    assert principal is not None
    # In the user's session: input idle (GetLastInputInfo) is seen from there only.
    assert principal.findtext("t:LogonType", namespaces=NS) == "InteractiveToken"
    execs = task.findall("t:Actions/t:Exec", NS)
    assert len(execs) == 1
    assert [child.tag.split("}")[1] for child in execs[0]] == [
        "Command",
        "Arguments",
        "WorkingDirectory",
    ]  # the schema's sequence


def test_the_task_runs_the_daemon_command_with_paths_quoted() -> None:
    task = parse_task(task_xml(HOME, PYTHONW, None))
    exe = task.find("t:Actions/t:Exec", NS)
    assert exe is not None
    assert exe.findtext("t:Command", namespaces=NS) == f'"{PYTHONW}"'
    arguments = exe.findtext("t:Arguments", namespaces=NS) or ""
    assert windows_argv(arguments) == [
        "-m",
        "perfmode",
        "schedule",
        "--home",
        HOME,
        "--log-file",
        HOME + r"\schedule.log",  # pythonw has no console: lines go to the log
    ]
    assert exe.findtext("t:WorkingDirectory", namespaces=NS) == HOME
    assert task.find("t:Triggers/t:LogonTrigger/t:UserId", NS) is None


def test_the_task_text_is_ascii_so_no_console_code_page_mangles_it() -> None:
    text = task_xml(HOME, PYTHONW, "HOST\\zoë")
    assert text.isascii()
    assert "&#252;" in text  # ü, as a character reference
    assert parse_task(text).find("t:Triggers/t:LogonTrigger/t:UserId", NS).text == "HOST\\zoë"


def test_the_plist_is_a_launch_agent_that_keeps_the_daemon_running() -> None:
    home = Path("/Users/ana lee/trading & co")
    agent = plistlib.loads(launchd_plist(home, "/Users/ana lee/.venv/bin/python").encode())
    assert agent["Label"] == LAUNCHD_LABEL
    # An array, one item per argument: a path with spaces needs no quoting, and gets none.
    assert agent["ProgramArguments"] == [
        "/Users/ana lee/.venv/bin/python",
        "-m",
        "perfmode",
        "schedule",
        "--home",
        str(home),
    ]
    assert agent["RunAtLoad"] is True
    # Started again unless it exited 0 (how a stop ends it); never faster than systemd's 30 s.
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ThrottleInterval"] >= 10
    assert agent["StandardErrorPath"] == str(home / "schedule.log")


@pytest.mark.parametrize(
    ("flag", "hint"),
    [("--print-task-xml", "schtasks /Create /XML"), ("--print-launchd-plist", "launchctl")],
)
def test_the_cli_prints_the_file_and_says_how_to_install_it(
    cli, home: Home, flag: str, hint: str
) -> None:
    result = cli("schedule", flag)
    assert result.exit_code == 0
    assert hint in result.stderr and hint not in result.stdout  # stdout is the file alone
    if flag == "--print-task-xml":
        exe = parse_task(result.stdout).find("t:Actions/t:Exec", NS)
        assert exe is not None
        args = windows_argv(exe.findtext("t:Arguments", namespaces=NS) or "")
        assert args[3:5] == ["--home", str(PureWindowsPath(home.root))]
    else:
        agent = plistlib.loads(result.stdout.encode())
        assert agent["ProgramArguments"][0] == sys.executable
        assert agent["ProgramArguments"][-1] == str(home.root)
    assert list(home.root.iterdir()) == []  # printing writes nothing


def test_print_options_go_alone(cli) -> None:
    result = cli("schedule", "--print-task-xml", "--print-launchd-plist")
    assert result.exit_code == 2
    assert "goes alone" in result.stderr
