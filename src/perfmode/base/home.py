"""Where everything lives: one *home* folder per set of runs.

Every path the project reads or writes is built here, so moving a file is a one-line change.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from perfmode.errors import PerfmodeError, UsageError

HOME_ENV = "PERFMODE_HOME"
DEFAULT_RUN = "default"
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # always fullmatch: `$` lets "x\n" in


def resolve_home(home: Path | str | None = None) -> Home:
    """``home`` if given, else ``$PERFMODE_HOME``, else the current directory.

    A bad value is reported under the name it came from (``--home`` or ``PERFMODE_HOME``).
    """
    source = "--home"
    if home is None or str(home) == "":
        source = HOME_ENV
        home = os.environ.get(HOME_ENV) or Path.cwd()
    root = Path(home).expanduser()
    try:
        if root.exists() and not root.is_dir():
            raise UsageError(f"{source}: '{root}' is a file; pass a folder")
        return Home(root.resolve())
    except (OSError, RuntimeError) as e:  # RuntimeError: pathlib's "Symlink loop" (3.11)
        why = "is a symlink loop" if "loop" in str(e).lower() else f"cannot be used ({e})"
        raise UsageError(f"{source}: '{root}' {why}; pass a folder") from None


def check_run_name(run: str) -> str:
    if not _RUN_NAME.fullmatch(run):
        raise UsageError(
            f"run name {run!r} is not allowed; use letters, digits, '.', '_' or '-' (max 64)"
        )
    return run


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def settings_lock(self) -> Path:
        return self.root / "settings.json.lock"

    @property
    def daemon_lock(self) -> Path:
        return self.root / "schedule.lock"

    @property
    def daemon_pid(self) -> Path:
        return self.root / "schedule.pid"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run: str = DEFAULT_RUN) -> Path:
        return self.runs_dir / check_run_name(run)

    def checkpoints_dir(self, run: str = DEFAULT_RUN) -> Path:
        return self.run_dir(run) / "checkpoints"

    def status_file(self, run: str = DEFAULT_RUN) -> Path:
        return self.run_dir(run) / "status.json"

    def metrics_file(self, run: str = DEFAULT_RUN) -> Path:
        return self.run_dir(run) / "metrics.csv"

    def log_file(self, run: str = DEFAULT_RUN) -> Path:
        return self.run_dir(run) / "train.log"

    def train_lock(self, run: str = DEFAULT_RUN) -> Path:
        return self.run_dir(run) / "train.lock"

    def run_names(self) -> list[str]:
        """The runs that have a folder; a folder with a name no run can have is not one."""
        try:
            names = [p.name for p in self.runs_dir.iterdir() if p.is_dir()]
        except OSError:  # no runs yet, or a home we cannot list
            return []
        return sorted(n for n in names if _RUN_NAME.fullmatch(n))

    def make_run_dir(self, run: str = DEFAULT_RUN) -> Path:
        """The run's folder, made if needed; a home that cannot hold it is one clear error."""
        folder = self.run_dir(run)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PerfmodeError(
                f"cannot make {folder} ({e.strerror or e}); use a home folder you can write: "
                "--home DIR or PERFMODE_HOME"
            ) from None
        return folder
