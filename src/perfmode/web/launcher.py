"""Starting and stopping trainers from the page.

The page names a run and picks a config from a list, both checked here; the command line
is :func:`perfmode.training.command.train_command`'s
(``sys.executable -m perfmode train --home H --run NAME [--config CFG]``), no shell. Stopping sends SIGTERM (the trainer saves, then exits) to the pid in the run's
status.json, and only when that process is a ``perfmode train`` of this home and run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import DEFAULT_RUN, HOME_ENV, Home, check_run_name
from perfmode.errors import PerfmodeError, UsageError
from perfmode.status.file import is_alive, read_status
from perfmode.training import command
from perfmode.web.security import TOKEN_ENV

BUILTIN_CONFIG = "built-in default"
# Where a trainer started from the page writes its stdout/stderr: the lines that never
# reach train.log (an "Error: ..." from the command line, a traceback) are read from here.
LAUNCH_DIR = ".perfmode-ui"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def list_configs(home: Home) -> list[str]:
    """The configs the page offers: the built-in default, the home's *.yaml and configs/*.yaml."""
    found: list[str] = []
    for folder in (home.root, home.root / "configs"):
        try:
            names = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
        except OSError:
            continue
        found += [p.relative_to(home.root).as_posix() for p in names if p.is_file()]
    return [BUILTIN_CONFIG, *found]


def train_command(home: Home, run: str, config: str) -> list[str]:
    """The only command the page can run; ``config`` must be one ``list_configs`` offers."""
    check_run_name(run)
    if config not in list_configs(home):
        raise UsageError(
            f"config {config!r} is not one of this home's configs; "
            "put a .yaml file in the home or its configs/ folder"
        )
    path = home.root / config if config != BUILTIN_CONFIG else None
    return command.train_command(home.root, run=run, config=path)


@dataclass
class Launch:
    """A trainer this server started, until the page has seen how it ended."""

    run: str
    config: str
    proc: subprocess.Popen[bytes]
    output: Path
    started_at: str
    exit_code: int | None = None
    message: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "config": self.config,
            "pid": self.proc.pid,
            "started_at": self.started_at,
            "running": self.exit_code is None,
            "exit_code": self.exit_code,
            "message": self.message,
        }


class Launcher:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.launches: dict[str, Launch] = {}

    def start(self, run: str, config: str) -> Launch:
        cmd = train_command(self.home, run, config)
        current = self.launches.get(run)
        if current is not None and current.exit_code is None and current.proc.poll() is None:
            raise PerfmodeError(f"run {run!r} is starting already (pid {current.proc.pid})")
        status = read_status(self.home.status_file(run))
        if status is not None and is_alive(status):
            raise PerfmodeError(f"run {run!r} is training already (pid {status.run.pid})")
        out_dir = self.home.root / LAUNCH_DIR
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            output = out_dir / f"{run}.log"
            with open(output, "wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.home.root,
                    # The page's token is the page's: a trainer has no use for it.
                    env={
                        **{k: v for k, v in os.environ.items() if k != TOKEN_ENV},
                        "PYTHONUNBUFFERED": "1",
                    },
                    # Its own session: Ctrl-C on `perfmode ui` does not stop the trainers it
                    # started; they are stopped from the page, or with SIGTERM, and save.
                    start_new_session=True,
                )
        except OSError as e:
            raise PerfmodeError(f"cannot start a trainer for run {run!r}: {e}") from None
        launch = Launch(run, config, proc, output, format_time(utc_now()))
        self.launches[run] = launch
        return launch

    def poll(self) -> bool:
        """Notice trainers that exited; True when one did (the page must be told)."""
        changed = False
        for launch in self.launches.values():
            if launch.exit_code is None and launch.proc.poll() is not None:
                launch.exit_code = launch.proc.returncode
                launch.message = last_line(launch.output, prefer_error=launch.exit_code != 0)
                changed = True
        return changed

    def report(self) -> dict[str, dict[str, Any]]:
        return {run: launch.report() for run, launch in self.launches.items()}

    def stop(self, run: str) -> int:
        """SIGTERM the run's trainer; its pid."""
        check_run_name(run)
        status = read_status(self.home.status_file(run))
        launch = self.launches.get(run)
        if status is not None and status.run.pid is not None and is_alive(status):
            pid = status.run.pid
        elif launch is not None and launch.exit_code is None and launch.proc.poll() is None:
            # Started here and still loading (no status.json of its own yet).
            pid = launch.proc.pid
        else:
            raise PerfmodeError(f"run {run!r} is not training; nothing to stop")
        if not is_trainer_of(pid, self.home, run):
            raise PerfmodeError(
                f"pid {pid} in {self.home.status_file(run)} is not a perfmode trainer of this "
                "home and run; not stopping it"
            )
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            raise PerfmodeError(f"run {run!r} is not training; nothing to stop") from None
        except OSError as e:
            raise PerfmodeError(f"cannot stop pid {pid}: {e}") from None
        return pid


def is_trainer_of(pid: int, home: Home, run: str) -> bool:
    try:
        p = psutil.Process(pid)
        cmdline, cwd = p.cmdline(), p.cwd()
        try:
            env_home = p.environ().get(HOME_ENV)
        except psutil.Error:
            env_home = None
    except (psutil.Error, OSError):
        return False
    return trainer_target(cmdline, cwd, env_home) == (home.root, run)


def trainer_target(cmdline: list[str], cwd: str, env_home: str | None) -> tuple[Path, str] | None:
    """``(home, run)`` that a ``perfmode train`` command line trains, else None.

    Reads the forms a trainer is started with: ``python -m perfmode train ...`` and the
    ``perfmode`` script (run directly or through its interpreter).
    """
    args = None
    for i, arg in enumerate(cmdline):
        if arg == "-m" and cmdline[i + 1 : i + 2] == ["perfmode"]:
            args = cmdline[i + 2 :]
            break
        if Path(arg).name in ("perfmode", "perfmode.exe"):
            args = cmdline[i + 1 :]
            break
    if not args or args[0] != "train":
        return None
    home = _option(args, "--home") or env_home or cwd
    run = _option(args, "--run") or DEFAULT_RUN
    root = Path(home).expanduser()
    if not root.is_absolute():
        root = Path(cwd) / root
    try:
        return root.resolve(), run
    except OSError:
        return None


def _option(args: list[str], name: str) -> str | None:
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def last_line(path: Path, prefer_error: bool) -> str | None:
    """The line that says how a trainer ended: its ``Error:`` line if it failed, else the last."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 16384))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [_ANSI.sub("", line).strip() for line in tail.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    if prefer_error:
        for line in reversed(lines):
            if line.startswith("Error:"):
                return line
    return lines[-1]
