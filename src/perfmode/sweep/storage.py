"""Where a study lives: Optuna's journal file in the home, or a database for many machines.

The default is ``HOME/sweeps/NAME.journal`` (no server; several processes on one machine
share it through a lock file). ``--storage`` takes a path ending ``.journal`` or ``.log``
(another journal file) or any SQLAlchemy URL Optuna accepts, PostgreSQL being the one for
several machines. A URL that is wrong, or a database that is down, is one line naming it
(the password masked); once a sweep runs, storage calls are retried (:func:`retrying`), so a
database that goes away for a while never stops a trial's training. Every call a sweep makes
through the storage is timed (:class:`StorageClock`): the storage's own cost of a trial.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from perfmode.base.envvars import env_seconds
from perfmode.base.home import Home
from perfmode.errors import PerfmodeError, UsageError

log = logging.getLogger("perfmode.sweep")

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}")
JOURNAL_SUFFIXES = (".journal", ".log")
PATIENCE_ENV = "PERFMODE_SWEEP_PATIENCE_S"
DEFAULT_PATIENCE_S = 600.0


def check_sweep_name(name: str) -> str:
    # fullmatch: `$` would accept a name ending in a newline, a file name no one can type.
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"sweep name {name!r} is not allowed; use letters, digits, '.', '_' or '-' (max 41)"
        )
    return name


def journal_path(home: Home, name: str) -> Path:
    return home.root / "sweeps" / f"{check_sweep_name(name)}.journal"


def masked(url: str) -> str:
    """``url`` with any password replaced by ***, for messages and the page."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class Where:
    """A study's storage as the user named it."""

    url: str | None
    """None: the home's journal; else what --storage said."""
    journal: Path | None
    """The journal file, when the storage is one."""

    @property
    def label(self) -> str:
        return str(self.journal) if self.journal is not None else masked(self.url or "")


def where(home: Home, name: str, url: str | None) -> Where:
    if url is None or url == "":
        return Where(None, journal_path(home, name))
    if "://" not in url:
        path = Path(url).expanduser()
        if path.suffix not in JOURNAL_SUFFIXES:
            raise UsageError(
                f"--storage {url}: name a journal file ending .journal or .log, or a database "
                "URL such as postgresql://user:password@host/db"
            )
        return Where(url, path.resolve())
    return Where(url, None)


def open_storage(w: Where, *, create: bool) -> Any:
    """Optuna's storage object; ``create`` False refuses a journal file that is not there."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if w.journal is not None:
        if not create and not w.journal.is_file():
            raise _NoStudy(w)
        try:
            w.journal.parent.mkdir(parents=True, exist_ok=True)
            # The open() lock works everywhere; the default symlink lock fails on Windows.
            lock = JournalFileOpenLock(str(w.journal))
            return optuna.storages.JournalStorage(JournalFileBackend(str(w.journal), lock))
        except OSError as e:
            raise PerfmodeError(
                f"cannot open sweep journal {w.journal}: {e.strerror or e}"
            ) from None
    assert w.url is not None
    url = _with_driver(w.url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgres"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    try:
        return _rdb_storage(url, kwargs)
    except ImportError as e:
        raise PerfmodeError(
            f"--storage {masked(w.url)}: its database driver is not installed ({e}); "
            "for PostgreSQL: pip install psycopg2-binary"
        ) from None
    except Exception as e:  # SQLAlchemy raises many types; all mean "cannot use it"
        raise PerfmodeError(f"cannot open sweep storage {masked(w.url)}: {first_line(e)}") from None


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> Any:
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (IntegrityError, ProgrammingError):
            # Two machines creating the tables of a new database at once: one wins, the other
            # finds them made on its next try.
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError  # unreachable


def _with_driver(url: str) -> str:
    """A plain postgresql:// URL with the driver perfmode depends on (psycopg2): SQLAlchemy 2.1
    reads the plain scheme as psycopg 3, which may not be installed."""
    import importlib.util

    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain) and importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.removeprefix(plain)
    return url


class _NoStudy(PerfmodeError):
    def __init__(self, w: Where, name: str | None = None) -> None:
        what = f"no sweep named {name!r}" if name else "no sweep"
        super().__init__(
            f"{what} in {w.label}; start one with `perfmode sweep NAME --trials N`"
            + ("" if w.url is None else " --storage URL"),
            exit_code=1,
        )


def no_study(w: Where, name: str) -> PerfmodeError:
    return _NoStudy(w, name)


def first_line(e: BaseException) -> str:
    e = _unwrapped(e)
    text = str(getattr(e, "orig", None) or e).strip() or type(e).__name__
    return text.splitlines()[0]


def patience_seconds(env: dict[str, str] | None = None) -> float:
    """How long a trial's result waits for a storage that went away (``$PERFMODE_SWEEP_PATIENCE_S``,
    default 10 minutes) before its run folder is left for the next sweep to record."""
    return env_seconds(
        PATIENCE_ENV,
        DEFAULT_PATIENCE_S,
        lambda s: 0 <= s <= 86_400,
        "give seconds from 0 to 86400",
        env,
    )


class StorageClock:
    """Time spent inside the storage's own calls, and how many, per thread.

    A worker thread runs one trial at a time, so what its clock gains from the trial's first
    call (counting the study's trials before asking for it) to its last (the result) is that
    trial's storage cost, and never a neighbour's.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def now(self) -> tuple[float, int]:
        """(seconds, calls) of this thread so far."""
        return getattr(self._local, "seconds", 0.0), getattr(self._local, "calls", 0)

    def timed(self, fn: Callable[..., T]) -> Callable[..., T]:
        local = self._local

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> T:
            if getattr(local, "inside", False):  # the storage calling itself: counted once
                return fn(*args, **kwargs)
            local.inside = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                local.inside = False
                local.seconds = getattr(local, "seconds", 0.0) + time.perf_counter() - t0
                local.calls = getattr(local, "calls", 0) + 1

        return call


def timed_storage(storage: Any, clock: StorageClock) -> Any:
    """``storage`` (Optuna's, as a study would use it) with every method of Optuna's storage
    API timed by ``clock``: asks, counts, reports, the pruner's reads, attributes, results."""
    import optuna

    storage = optuna.storages.get_storage(storage)  # RDB gets its cache first, as in a study
    for name in dir(optuna.storages.BaseStorage):
        method = None if name.startswith("_") else getattr(storage, name, None)
        if callable(method):
            setattr(storage, name, clock.timed(method))
    return storage


def retrying(
    call: Callable[[], T],
    what: str,
    *,
    patience: float,
    should_give_up: Callable[[], bool] = lambda: False,
) -> T:
    """``call()``, retried with backoff for up to ``patience`` seconds of storage trouble.

    The first failure is logged once, and a success after it; the last failure is raised as
    a PerfmodeError naming ``what``.
    """
    start = time.monotonic()
    delay, said = 0.5, False
    while True:
        try:
            result = call()
        except Exception as e:
            if isinstance(e, PerfmodeError) or not _transient(e):
                raise
            if time.monotonic() - start >= patience or should_give_up():
                raise PerfmodeError(
                    f"sweep storage unreachable while trying to {what}: {first_line(e)}"
                ) from None
            if not said:
                log.warning("⚠️  sweep storage: cannot %s (%s); retrying", what, first_line(e))
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        if said:
            log.info("🔌 sweep storage: back (%s)", what)
        return result


def _unwrapped(e: BaseException) -> BaseException:
    """What went wrong underneath: Optuna's RDB storage turns every SQLAlchemy error at a
    commit (a database that went away included) into a StorageInternalError about "invalid
    data" and keeps the real one as its cause."""
    from optuna.exceptions import StorageInternalError

    while isinstance(e, StorageInternalError) and isinstance(e.__cause__, Exception):
        e = e.__cause__
    return e


def _transient(e: Exception) -> bool:
    """Trouble reaching the storage, as opposed to a mistake in the call."""
    try:
        from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy comes with optuna
        return isinstance(e, OSError)
    e = _unwrapped(e)  # type: ignore[assignment]
    if isinstance(e, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(e, DBAPIError) and bool(getattr(e, "connection_invalidated", False))
