"""Starting and stopping trainers from the page.

The page names a run and picks a config from a list, both checked here; the command line
is :func:`perfmode.training.command.train_command`'s
(``sys.executable -m perfmode train --home H --run NAME [--config CFG]``), no shell.
Stopping sends SIGTERM (Ctrl-Break on Windows; the trainer saves, then exits) to the pid in
the run's status.json, and only when that process started when the trainer recorded it did (a
pid and an argv alone can be anyone's) and is a ``perfmode train`` of this home and run.

Starts queue: the page accepts every start, but the launcher starts a queued trainer only
while the home's budget has room for one more (no run of the home waits for a share and no
trainer started here is still loading), one at a time, so 30 starts neither load 30
interpreters at once nor keep 30 idle trainers in memory: the home runs what its budget
serves, plus at most one waiting in line, and the queue starts the next as a run ends.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import DEFAULT_RUN, HOME_ENV, Home, check_run_name
from perfmode.base.platform import detached_kwargs, open_unlinked, stop_process
from perfmode.base.smallfile import kind_of
from perfmode.errors import PerfmodeError, UsageError
from perfmode.governor.peers import peer_of
from perfmode.status.file import is_alive, is_writer, read_status
from perfmode.training import command
from perfmode.web.security import TOKEN_ENV

BUILTIN_CONFIG = "built-in default"
# Where a trainer started from the page writes its stdout/stderr: the lines that never
# reach train.log (an "Error: ..." from the command line, a traceback) are read from here.
LAUNCH_DIR = ".perfmode-ui"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A FIFO planted at a run's output opens at once (or fails) instead of blocking the server.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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
    cmd: list[str]
    output: Path
    queued_at: str
    proc: subprocess.Popen[bytes] | None = None
    """None while it is queued."""
    started_at: str | None = None
    exit_code: int | None = None
    message: str | None = None

    @property
    def queued(self) -> bool:
        return self.proc is None and self.exit_code is None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.exit_code is None and self.proc.poll() is None

    def report(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "config": self.config,
            "pid": self.proc.pid if self.proc else None,
            "queued": self.queued,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "running": self.proc is not None and self.exit_code is None,
            "exit_code": self.exit_code,
            "message": self.message,
        }


class Launcher:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.launches: dict[str, Launch] = {}

    def start(self, run: str, config: str) -> Launch:
        """Queue a trainer for ``run``; it starts now if the home's budget has room."""
        cmd = train_command(self.home, run, config)
        current = self.launches.get(run)
        if current is not None and current.queued:
            raise PerfmodeError(f"run {run!r} is queued already")
        if current is not None and current.running:
            assert current.proc is not None
            raise PerfmodeError(f"run {run!r} is starting already (pid {current.proc.pid})")
        status = read_status(self.home.status_file(run))
        if status is not None and is_alive(status):
            raise PerfmodeError(f"run {run!r} is training already (pid {status.run.pid})")
        output = self.home.root / LAUNCH_DIR / f"{run}.log"
        launch = Launch(run, config, cmd, output, format_time(utc_now()))
        if not any(x.queued for x in self.launches.values()) and self._room():
            # Started at once: a start that cannot happen (a planted log file, a missing
            # Python) is this request's error, not a queued run's later message.
            self._spawn(launch)
            self.launches[run] = launch
            return launch
        self.launches[run] = launch
        self._start_queued()
        return launch

    def _room(self) -> bool:
        """The home's budget could serve one more run: nobody waits, nothing is loading."""
        for launch in self.launches.values():
            if launch.running and not self._has_status(launch):
                return False  # still loading: what it will get is not known yet
        for run in self.home.run_names():
            status = read_status(self.home.status_file(run))
            if status and status.run.state == "waiting" and peer_of(run, status):
                return False
        return True

    def _has_status(self, launch: Launch) -> bool:
        status = read_status(self.home.status_file(launch.run))
        return launch.proc is not None and status is not None and status.run.pid == launch.proc.pid

    def _start_queued(self) -> bool:
        """Start the oldest queued trainer if there is room; True when one started."""
        queued = [x for x in self.launches.values() if x.queued]
        if not queued or not self._room():
            return False
        launch = min(queued, key=lambda x: x.queued_at)
        try:
            self._spawn(launch)
        except PerfmodeError as e:
            launch.exit_code, launch.message = 1, str(e)
        return True

    def _spawn(self, launch: Launch) -> None:
        run, cmd, output = launch.run, launch.cmd, launch.output
        try:
            with open_output(output) as out:
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
                    # Apart from the page: Ctrl-C on `perfmode ui` does not stop the trainers
                    # it started; they are stopped from the page (or SIGTERM), and save.
                    **detached_kwargs(),
                )
        except OSError as e:
            raise PerfmodeError(f"cannot start a trainer for run {run!r}: {e}") from None
        launch.proc, launch.started_at = proc, format_time(utc_now())

    def poll(self) -> bool:
        """Notice trainers that exited, start queued ones; True when the page must be told."""
        changed = self._start_queued()
        for launch in self.launches.values():
            if (
                launch.proc is not None
                and launch.exit_code is None
                and launch.proc.poll() is not None
            ):
                launch.exit_code = launch.proc.returncode
                launch.message = last_line(launch.output, prefer_error=launch.exit_code != 0)
                changed = True
        return changed

    def report(self) -> dict[str, dict[str, Any]]:
        return {run: launch.report() for run, launch in self.launches.items()}

    def stop(self, run: str) -> int | None:
        """Ask the run's trainer to save and exit (``platform.stop_process``); its pid (None:
        it was queued, and now is not)."""
        check_run_name(run)
        status = read_status(self.home.status_file(run))
        launch = self.launches.get(run)
        if launch is not None and launch.queued:
            launch.exit_code, launch.message = 0, "taken off the queue before it started"
            return None
        if status is not None and status.run.pid is not None and is_alive(status):
            pid = status.run.pid
            writer = is_writer(status)
        elif launch is not None and launch.running and launch.proc is not None:
            # Started here and still loading (no status.json of its own yet).
            pid, writer = launch.proc.pid, True  # our own child: its pid is ours to wait on
        else:
            raise PerfmodeError(f"run {run!r} is not training; nothing to stop")
        if not is_trainer_of(pid, self.home, run):
            raise PerfmodeError(
                f"pid {pid} in {self.home.status_file(run)} is not a perfmode trainer of this "
                "home and run; not stopping it"
            )
        if not writer:
            raise PerfmodeError(
                f"pid {pid} in {self.home.status_file(run)} is not the process that wrote it "
                "(it did not start when the trainer recorded it did); not stopping it"
            )
        try:
            stop_process(pid)
        except ProcessLookupError:
            raise PerfmodeError(f"run {run!r} is not training; nothing to stop") from None
        except OSError as e:
            raise PerfmodeError(f"cannot stop pid {pid}: {e}") from None
        return pid


def open_output(path: Path) -> BinaryIO:
    """The run's output file, emptied for a new start: a regular file of its own only.

    Emptying it must not empty anything else, so nothing planted there is followed or
    emptied: a symlink at the file or at its folder (``platform.open_unlinked``), a hard
    link (a second name for someone's file), a FIFO (opened without blocking, or failing
    at once with no reader, and refused).
    """
    folder = path.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)  # the home, on a first start
        os.mkdir(folder, 0o755)
    except FileExistsError:
        pass  # a link or a file there is refused by the open below
    except OSError as e:
        raise PerfmodeError(f"cannot make {folder}: {e.strerror or e}") from None
    try:
        fd = open_unlinked(folder, path.name, os.O_WRONLY | os.O_CREAT | _NONBLOCK, 0o644)
    except OSError as e:
        raise PerfmodeError(_refusal(path, e)) from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"{path} is {kind_of(st.st_mode)}, not a regular file"
    elif st.st_nlink > 1:
        # Created here, a file has one name; another one means somebody else's data.
        problem = f"{path} is a hard link (one of {st.st_nlink} names of a file)"
    if problem:
        os.close(fd)
        raise PerfmodeError(f"{problem}; remove it and start the run again")
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "wb")


def _refusal(path: Path, e: OSError) -> str:
    """Why ``path`` could not be opened, in words: a planted link, a folder that is none."""
    for where, what in ((path.parent, "folder"), (path, "file")):
        try:
            mode = os.lstat(where).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            return (
                f"{where} is a symlink; the page writes a trainer's output only to a {what} of "
                "its own there: remove the link"
            )
        if what == "folder" and not stat.S_ISDIR(mode):
            kind = "a file" if stat.S_ISREG(mode) else kind_of(mode)
            return f"{where} is {kind}, not a folder; remove it and start the run again"
        if what == "file" and not stat.S_ISREG(mode):  # a FIFO with no reader: ENXIO
            return (
                f"{where} is {kind_of(mode)}, not a regular file; remove it and start the run again"
            )
    return f"cannot write {path}: {e.strerror or e}"


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
        fd = open_unlinked(path.parent, path.name, os.O_RDONLY | _NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None  # a FIFO would never end the read
            f.seek(max(0, st.st_size - 16384))
            tail = f.read(16384).decode("utf-8", "replace")
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
