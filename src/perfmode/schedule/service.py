"""The schedule daemon as a service: a systemd user unit, a Windows Task Scheduler task, a
macOS LaunchAgent. Each runs the same command, ``PYTHON -m perfmode schedule --home HOME``,
which follows the stored timetable; each file says in its first lines how to install it.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
from pathlib import Path, PurePath, PureWindowsPath
from xml.sax.saxutils import escape

TASK_NAME = "perfmode-schedule"
LAUNCHD_LABEL = "local.perfmode-schedule"
LOG_NAME = "schedule.log"
# Like systemd's RestartSec=30: a daemon that keeps failing does not spin.
RESTART_EVERY_S = 30


def daemon_command(python: str, home: PurePath) -> list[str]:
    return [python, "-m", "perfmode", "schedule", "--home", str(home)]


def _systemd_arg(arg: str) -> str:
    # ExecStart splits on spaces and expands % specifiers and $VARS; quote and escape those.
    arg = arg.replace("%", "%%").replace("$", "$$")
    if any(c in arg for c in " \t\"'\\"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def systemd_unit(home: PurePath, python: str) -> str:
    cmd = daemon_command(python, home)
    return f"""\
# perfmode schedule daemon, as a systemd user service. Install:
#   perfmode schedule --night 18:00 --day 08:00 --save-only --home {home}
#   perfmode schedule --print-systemd-unit --home {home} \\
#     > ~/.config/systemd/user/perfmode-schedule.service
#   systemctl --user daemon-reload
#   systemctl --user enable --now perfmode-schedule.service
#   loginctl enable-linger "$USER"   # keep it running while you are logged out
[Unit]
Description=perfmode schedule daemon for {home}

[Service]
Type=simple
ExecStart={" ".join(_systemd_arg(a) for a in cmd)}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec={RESTART_EVERY_S}
# Exit 2 is a bad or missing timetable: restarting will not fix it.
RestartPreventExitStatus=2

[Install]
WantedBy=default.target
"""


def windows_user() -> str | None:
    """``DOMAIN\\user`` of whoever runs this on Windows (the task starts at their log-on)."""
    user = os.environ.get("USERNAME")
    if not user:
        return None
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


def _xml(text: str) -> str:
    # ASCII only, other characters as references: the text survives any console code page
    # on its way to the file, which Out-File then writes as UTF-16 for schtasks.
    return escape(text).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _windows_command(path: str) -> str:
    return f'"{path}"' if " " in path else path


def task_xml(home: PurePath | str, python: str, user: str | None) -> str:
    """A Task Scheduler task: at ``user``'s log-on (any user's when None, which needs an
    administrator to register), one instance, no time limit, restarted when it fails.
    ``python`` is best ``pythonw.exe``: no console window, so lines go to the log file."""
    win_home = PureWindowsPath(home)
    log = str(win_home / LOG_NAME)
    args = [*daemon_command(python, win_home)[1:], "--log-file", log]
    user_id = f"\n      <UserId>{_xml(user)}</UserId>" if user else ""
    return f"""\
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>perfmode schedule daemon for {_xml(str(win_home))}</Description>
    <URI>\\{TASK_NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>{user_id}
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>3</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{_xml(_windows_command(python))}</Command>
      <Arguments>{_xml(subprocess.list2cmdline(args))}</Arguments>
      <WorkingDirectory>{_xml(str(win_home))}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def launchd_plist(home: Path, python: str) -> str:
    """A LaunchAgent: started at log-in (RunAtLoad), started again when it fails
    (KeepAlive unless it exited 0, which is how a stop ends it)."""
    log = str(home / LOG_NAME)
    agent = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": daemon_command(python, home),
        "WorkingDirectory": str(home),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_EVERY_S,
        "ProcessType": "Background",
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    return plistlib.dumps(agent, sort_keys=False).decode("utf-8")


def install_hint(kind: str, home: PurePath) -> str:
    """The line said on stderr beside a printed task or plist (an XML comment cannot hold
    the ``--`` of an option)."""
    if kind == "task":
        return (
            "Install it (PowerShell; Out-File writes the UTF-16 that schtasks reads): "
            f'perfmode schedule --print-task-xml --home "{home}" '
            f"| Out-File -Encoding unicode {TASK_NAME}.xml; "
            f"schtasks /Create /XML {TASK_NAME}.xml /TN {TASK_NAME}"
        )
    plist = f"~/Library/LaunchAgents/{LAUNCHD_LABEL}.plist"
    return (
        f"Install it: perfmode schedule --print-launchd-plist --home '{home}' > {plist}; "
        f'launchctl bootstrap gui/"$(id -u)" {plist}'
    )
