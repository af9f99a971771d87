"""Reconcile, the daemon lock, and a real daemon process flipping a real settings.json."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perfmode.errors import PerfmodeError
from perfmode.home import Home
from perfmode.schedule import (
    DaemonLock,
    Timetable,
    reconcile,
    run_daemon,
    running_daemon_pid,
    schedule_report,
    store_timetable,
    timetable_of,
)
from perfmode.settings import HAND_EDIT, Mode, SettingsStore, format_time
from tests.conftest import PERFMODE, run_perfmode, wait_for

TT = Timetable.create(tz="Europe/Berlin", night="18:00", day="08:00")
BERLIN_SUMMER = 2  # UTC offset in June


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A June 2024 instant given as Berlin wall time."""
    return datetime(2024, 6, day, hour - BERLIN_SUMMER, minute, tzinfo=UTC)


def write(home: Home, **data: object) -> None:
    home.settings.write_text(json.dumps({"schedule": TT.to_dict(), **data}))


def changed(mode: str, when: datetime, by: str = "cli") -> dict[str, str]:
    return {
        "performance_mode": mode,
        "changed_at": format_time(when),
        "changed_by": by,
        "changed_to": mode,
    }


# --- reconcile -----------------------------------------------------------------------------


def test_reconcile_applies_a_boundary_missed_while_nobody_ran(home: Home) -> None:
    # Quiet was set at 10:00; the daemon was down over the 18:00 boundary.
    write(home, **changed("quiet", at(5, 10)))
    store = SettingsStore(home.settings)
    written = reconcile(store, now=at(6, 3))
    assert written is not None
    assert (written.mode, written.changed_by, written.changed_at) == (
        Mode.PERFORMANCE,
        "schedule",
        at(6, 3),
    )


def test_reconcile_respects_a_manual_change_until_the_next_boundary(home: Home) -> None:
    write(home, **changed("quiet", at(5, 19)))  # after the 18:00 boundary
    store = SettingsStore(home.settings)
    before = home.settings.read_bytes()
    assert reconcile(store, now=at(5, 23)) is None
    assert home.settings.read_bytes() == before
    # The next boundary (08:00 quiet) has nothing to do; the one after takes over.
    assert reconcile(store, now=at(6, 9)) is None
    written = reconcile(store, now=at(6, 18, 1))
    assert written is not None and written.mode is Mode.PERFORMANCE


def test_a_repeated_reconcile_writes_nothing(home: Home) -> None:
    write(home, **changed("quiet", at(5, 10)))
    store = SettingsStore(home.settings)
    assert reconcile(store, now=at(5, 18, 0)) is not None
    sig = store.signature()
    for minutes in (0, 1, 60):
        assert reconcile(store, now=at(5, 18, 0) + timedelta(minutes=minutes)) is None
    assert store.signature() == sig


def test_reconcile_skips_the_write_when_the_mode_is_already_right(home: Home) -> None:
    write(home, **changed("performance", at(5, 17)))
    store = SettingsStore(home.settings)
    sig = store.signature()
    assert reconcile(store, now=at(5, 19)) is None
    assert store.signature() == sig


def test_reconcile_without_a_timetable_does_nothing(home: Home) -> None:
    home.settings.write_text(json.dumps(changed("quiet", at(5, 10))))
    assert reconcile(SettingsStore(home.settings), now=at(6, 3)) is None


def test_a_hand_edit_counts_from_the_file_mtime(home: Home) -> None:
    write(home, performance_mode="quiet")  # no bookkeeping: typed by hand
    store = SettingsStore(home.settings)
    mtime = at(5, 19).timestamp()
    os.utime(home.settings, (mtime, mtime))
    assert reconcile(store, now=at(5, 20)) is None  # edited after 18:00: it stands
    os.utime(home.settings, (mtime - 7200, mtime - 7200))  # edited at 17:00
    written = reconcile(store, now=at(5, 20))
    assert written is not None and written.mode is Mode.PERFORMANCE


def test_storing_the_timetable_keeps_a_hand_edit_time(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "performance"}')
    old = time.time() - 7200
    os.utime(home.settings, (old, old))
    store = SettingsStore(home.settings)
    store_timetable(store, TT)
    s = store.read()
    assert s.changed_by == HAND_EDIT and s.mode is Mode.PERFORMANCE
    assert s.changed_at is not None and abs(s.changed_at.timestamp() - old) < 1
    assert timetable_of(s) == (TT, None)
    sig = store.signature()
    store_timetable(store, TT)  # same timetable: no write
    assert store.signature() == sig


def test_a_bad_hand_edited_schedule_is_a_problem_not_a_crash(home: Home) -> None:
    home.settings.write_text(json.dumps({"performance_mode": "quiet", "schedule": {"night": 7}}))
    store = SettingsStore(home.settings)
    tt, problem = timetable_of(store.read())
    assert tt is None and problem is not None and "schedule" in problem
    assert reconcile(store) is None
    report = schedule_report(home)
    assert report is not None and report["problem"] == problem and report["next_switch"] is None
    result = run_perfmode("status", "--home", str(home.root))
    assert result.returncode == 0, result.stderr
    assert "PROBLEM" in result.stdout


# --- the lock ------------------------------------------------------------------------------


def test_one_daemon_lock_per_home(home: Home) -> None:
    assert running_daemon_pid(home) is None
    with DaemonLock(home):
        assert running_daemon_pid(home) == os.getpid()
        with pytest.raises(PerfmodeError, match=f"already runs for .* \\(pid {os.getpid()}\\)"):
            DaemonLock(home).acquire()
    assert not home.daemon_pid.exists()
    assert running_daemon_pid(home) is None


def test_a_stale_pid_file_is_not_a_running_daemon(home: Home) -> None:
    home.daemon_pid.write_text(f"{os.getpid()}\n")  # alive, but holds no lock
    assert running_daemon_pid(home) is None
    with DaemonLock(home):  # and it does not stop a new daemon
        pass


def test_run_daemon_reconciles_at_start_and_on_each_tick(home: Home) -> None:
    write(home, **changed("quiet", datetime.now(UTC) - timedelta(days=2)))
    store = SettingsStore(home.settings)
    stop = threading.Event()
    # A timetable whose mode right now is performance; then one whose mode is quiet.
    now = datetime.now(UTC)
    perf = Timetable.create(
        tz="UTC", rules=[f"{(now - timedelta(minutes=5)):%M %H} * * *=performance"]
    )
    store_timetable(store, perf)
    with DaemonLock(home):
        t = threading.Thread(target=run_daemon, args=(home,), kwargs={"tick_s": 0.1, "stop": stop})
        t.start()
        try:
            wait_for("performance", lambda: store.read().mode is Mode.PERFORMANCE, timeout=10)
            assert store.read().changed_by == "schedule"
            # Another process stores a new timetable with a boundary a second ahead: a
            # tick after it follows (there is no job for it in the first timetable).
            soon = datetime.now(UTC) + timedelta(seconds=1)
            store_timetable(store, Timetable.create(tz="UTC", rules=[_rule(soon, "quiet")]))
            wait_for("quiet", lambda: store.read().mode is Mode.QUIET, timeout=10)
            assert store.read().changed_at >= soon.replace(microsecond=0)
        finally:
            stop.set()
            t.join(10)
    assert not t.is_alive()


# --- a real daemon process -----------------------------------------------------------------


def _rule(t: datetime, mode: str) -> str:
    """A daily rule at ``t`` to the second (the six-field form)."""
    return f"{t:%S %M %H} * * *={mode}"


@pytest.fixture
def daemon(home: Home) -> Iterator[tuple[subprocess.Popen[str], datetime]]:
    """A daemon process whose timetable switches to performance a few seconds from now.

    The default 60 s tick is kept, so the switch can only come from the boundary's
    APScheduler job, not from the minute reconcile.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    boundary = now + timedelta(seconds=6)
    home.settings.write_text(json.dumps(changed("performance", now - timedelta(hours=1))))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PERFMODE_SCHEDULE_TICK_S", None)
    proc = subprocess.Popen(
        [
            *PERFMODE,
            "schedule",
            "--tz",
            "UTC",
            "--rule",
            _rule(now - timedelta(seconds=20), "quiet"),
            "--rule",
            _rule(boundary, "performance"),
            "--home",
            str(home.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(
            "the daemon to start",
            lambda: home.daemon_pid.exists() and proc.poll() is None,
            timeout=10,
        )
        yield proc, boundary
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_the_daemon_flips_settings_at_a_boundary(
    daemon: tuple[subprocess.Popen[str], datetime], home: Home
) -> None:
    proc, boundary = daemon
    store = SettingsStore(home.settings)
    # At start it applied the boundary in force (quiet, 20 s ago) over the older manual mode.
    wait_for("quiet", lambda: store.read().mode is Mode.QUIET, timeout=10)
    assert datetime.now(UTC) < boundary, "the daemon started too slowly for this test"
    wait_for("performance", lambda: store.read().mode is Mode.PERFORMANCE, timeout=15)
    s = store.read()
    assert s.changed_by == "schedule" and s.changed_at is not None
    assert boundary <= s.changed_at < boundary + timedelta(seconds=3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert f"⏰ {boundary:%H:%M:%S} UTC → performance (schedule)" in err


def test_a_second_daemon_is_refused_with_the_first_ones_pid(
    daemon: tuple[subprocess.Popen[str], datetime], home: Home
) -> None:
    proc, _ = daemon
    result = run_perfmode("schedule", "--home", str(home.root))
    assert result.returncode == 1
    assert f"already runs for {home.root} (pid {proc.pid})" in result.stderr
    assert proc.poll() is None
    status = json.loads(run_perfmode("status", "--json", "--home", str(home.root)).stdout)
    assert status["schedule"]["daemon_pid"] == proc.pid


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_the_daemon_exits_0_on_sigterm_and_removes_its_pid_file(
    daemon: tuple[subprocess.Popen[str], datetime], home: Home
) -> None:
    proc, _ = daemon
    wait_for(
        "quiet", lambda: SettingsStore(home.settings).read().mode is Mode.QUIET, timeout=10
    )  # running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert not home.daemon_pid.exists()
    assert running_daemon_pid(home) is None
    assert Path(home.daemon_lock).exists()  # lock files are never deleted


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_sigterm_while_the_daemon_starts_still_exits_0(
    daemon: tuple[subprocess.Popen[str], datetime], home: Home
) -> None:
    proc, _ = daemon  # the pid file exists: the handlers are already in place
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not home.daemon_pid.exists()


# --- hostile settings: the daemon neither freezes nor floods its log ---------------------------


@pytest.mark.parametrize("by", ["cli", "hand"])
def test_a_changed_at_in_the_future_does_not_freeze_the_schedule(home: Home, by: str) -> None:
    store = SettingsStore(home.settings)
    if by == "cli":
        write(home, **changed("quiet", datetime(2999, 1, 1, tzinfo=UTC)))
    else:  # typed by hand, with a file mtime far ahead (a clock that was set back since)
        write(home, performance_mode="quiet")
        future = datetime(2999, 1, 1, tzinfo=UTC).timestamp()
        try:
            os.utime(home.settings, (future, future))
        except (OSError, OverflowError):
            pytest.skip("the file system cannot hold that mtime")
    # The change counts from the first reconcile that sees it: it stands until the next
    # boundary (08:00 is quiet anyway), and the one after (18:00) switches.
    assert reconcile(store, now=at(5, 19)) is None
    s = store.read()
    assert s.mode is Mode.QUIET and s.changed_at == at(5, 19)
    assert reconcile(store, now=at(6, 9)) is None
    written = reconcile(store, now=at(6, 18, 1))
    assert written is not None and written.mode is Mode.PERFORMANCE


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def daemon_log() -> Iterator[_Lines]:
    logger = logging.getLogger("perfmode.schedule")
    lines = _Lines()
    logger.addHandler(lines)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(old)


def _run_ticks(home: Home, monkeypatch: pytest.MonkeyPatch, ticks: int) -> None:
    """Run the daemon (in a thread, 20 ms ticks) until it has reconciled ``ticks`` times."""
    import perfmode.schedule.daemon as daemon_module

    seen = []
    real = daemon_module.timetable_of

    def counting(settings):
        seen.append(1)
        return real(settings)

    monkeypatch.setattr(daemon_module, "timetable_of", counting)
    stop = threading.Event()
    t = threading.Thread(target=run_daemon, args=(home,), kwargs={"tick_s": 0.02, "stop": stop})
    t.start()
    try:
        wait_for(f"{ticks} reconciles", lambda: len(seen) >= ticks, timeout=120)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive()


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"performance_mode": "quiet", "n": ' + b"1" * 5000 + b"}",
        b'{"performance_mode": "quiet", "schedule": {"night": [[[]]], "tz": {"a": 1}}}',
        b'{"performance_mode": "quiet", "schedule": [1, 2]}',
    ],
    ids=["deep", "digits", "bad-types", "schedule-list"],
)
def test_the_daemon_says_a_broken_file_once_without_a_traceback(
    home: Home, monkeypatch: pytest.MonkeyPatch, daemon_log: _Lines, raw: bytes
) -> None:
    home.settings.write_bytes(raw)
    _run_ticks(home, monkeypatch, ticks=10)
    warnings = [r for r in daemon_log.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "\n" not in warnings[0].getMessage()
    assert all(r.exc_info is None for r in daemon_log.records)
    assert home.settings.read_bytes() == raw  # the daemon leaves a file it cannot use alone


def test_a_reconcile_that_keeps_failing_is_one_line_until_it_works_again(
    home: Home, monkeypatch: pytest.MonkeyPatch, daemon_log: _Lines
) -> None:
    write(home, **changed("quiet", datetime.now(UTC) - timedelta(days=2)))
    import perfmode.schedule.daemon as daemon_module

    calls = []

    def flaky(store):
        calls.append(1)
        if len(calls) <= 5:  # a full disk for five reconciles, then space again
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(daemon_module, "reconcile", flaky)
    _run_ticks(home, monkeypatch, ticks=10)
    messages = [r.getMessage() for r in daemon_log.records]
    assert len([m for m in messages if "No space left" in m]) == 1, messages
    assert len([m for m in messages if "works again" in m]) == 1, messages
    assert all(r.exc_info is None for r in daemon_log.records)
