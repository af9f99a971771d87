"""Shared pieces for sweep tests: a tiny sweep config, sweeps as processes, a PostgreSQL."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perfmode.base.home import Home
from tests.conftest import PERFMODE
from tests.trainkit import start_logged, trainer_output, write_config

REQUIRE_POSTGRES = "PERFMODE_REQUIRE_POSTGRES"

# Trials of 512 steps scored twice: seconds each on an idle core.
SWEEP: dict[str, Any] = {
    "env": {"validation": 0.15, "synthetic_market": "cycles"},
    "training": {"total_timesteps": 512, "checkpoint_freq": 128, "poll_interval": 0.1},
    "sweep": {
        "space": {"ppo.learning_rate": {"log_uniform": [1.0e-4, 1.0e-2]}},
        "reports": 2,
        "timesteps_per_trial": 512,
        "startup_trials": 10,
    },
}


def sweep_config(path: Path, **sections: dict[str, Any]) -> Path:
    merged = {k: {**SWEEP.get(k, {}), **sections.get(k, {})} for k in {*SWEEP, *sections}}
    return write_config(path, **merged)


def start_sweep(
    home: Home, name: str, config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``perfmode sweep`` as a process, its output in a file (``output(proc)``)."""
    argv = [*PERFMODE, "sweep", name, "--config", str(config), "--home", str(home.root), *args]
    return start_logged(home, f"sweep-{name}-", argv, env=env)


def output(proc: subprocess.Popen[str]) -> str:
    return trainer_output(proc)


def trials_of(storage: Any, name: str) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def journal(home: Home, name: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(home.root / "sweeps" / f"{name}.journal")
    return optuna.storages.JournalStorage(JournalFileBackend(path, JournalFileOpenLock(path)))


# -- a throwaway PostgreSQL cluster ------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A cluster in a temp folder on 127.0.0.1; as the ``postgres`` user when run as root
    (PostgreSQL refuses root)."""

    def __init__(self, bindir: Path) -> None:
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="perfmode-pg-"))
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._as_owner(f"{self.bin}/initdb -D {self.data} -A trust -U {self.user} >/dev/null")
        self.start()
        self._as_owner(f"{self.bin}/createdb -h 127.0.0.1 -p {self.port} -U {self.user} perfmode")

    @property
    def url(self) -> str:
        """What a user passes to --storage."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/perfmode"

    @property
    def driver_url(self) -> str:
        """For Optuna directly: SQLAlchemy 2.1 reads the plain scheme as psycopg 3."""
        return self.url.replace("postgresql://", "postgresql+psycopg2://", 1)

    def _as_owner(self, command: str) -> None:
        cmd = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_owner(f"{self.bin}/pg_ctl -D {self.data} -o '{opts}' -l {self.dir}/log -w start")

    def stop(self) -> None:
        self._as_owner(f"{self.bin}/pg_ctl -D {self.data} -m fast -w stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get(REQUIRE_POSTGRES) == "1":
            pytest.fail(f"PostgreSQL's initdb not found; {REQUIRE_POSTGRES}=1 makes this a failure")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql); skipping its tests")
    pg = Postgres(bindir)
    try:
        yield pg
    finally:
        pg.destroy()
