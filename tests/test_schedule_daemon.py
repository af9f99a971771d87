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
from filelock import FileLock

from perfmode.base.clock import format_time
from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.errors import PerfmodeError
from perfmode.schedule import (
    DaemonLock,
    Timetable,
    clear_timetable,
    reconcile,
    run_daemon,
    running_daemon_pid,
    schedule_report,
    store_timetable,
    timetable_of,
)
from perfmode.schedule.daemon import JOB_ID, TICK_ENV, _Worker
from perfmode.schedule.timetable import day_boundaries
from perfmode.settings.store import HAND_EDIT, SettingsStore
from tests.conftest import PERFMODE, WAIT_S, run_perfmode, wait_for

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


# --- when the daemon wakes -----------------------------------------------------------------


class Jobs:
    """The part of APScheduler the daemon's worker uses; a job's trigger is its instant."""

    def __init__(self) -> None:
        self.jobs: dict[str, datetime] = {}

    def add_job(self, func: object, trigger: datetime, **kw: object) -> None:
        self.jobs[str(kw["id"])] = trigger

    def get_job(self, job_id: str) -> datetime | None:
        return self.jobs.get(job_id)

    def remove_all_jobs(self) -> None:
        self.jobs.clear()

    def fire(self) -> datetime:
        """The one job runs (and, a date job, is gone): its instant."""
        [at] = self.jobs.values()
        self.jobs.clear()
        return at


def boundaries_after(tt: Timetable, start: datetime, n: int) -> list[datetime]:
    """The next ``n`` boundary instants, straight from ``day_boundaries``."""
    first = start.astimezone(tt.zone).date() - timedelta(days=1)
    days = [first + timedelta(days=i) for i in range(10)]
    return sorted({b.at for d in days for b in day_boundaries(tt, d) if b.at > start})[:n]


@pytest.mark.parametrize(
    ("timetable", "start", "expected"),
    [
        # Berlin springs 02:00 CET -> 03:00 CEST on Sunday 31 March 2024: 02:30 is 03:00 CEST.
        (
            {"night": "02:30", "day": "08:00"},
            datetime(2024, 3, 30, 11, tzinfo=UTC),
            [
                datetime(2024, 3, 31, 1, tzinfo=UTC),  # 03:00 CEST
                datetime(2024, 3, 31, 6, tzinfo=UTC),  # 08:00 CEST
                datetime(2024, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
            ],
        ),
        # It falls back on 27 October: 02:30 happens twice, the first time only counts.
        (
            {"night": "02:30", "day": "08:00"},
            datetime(2024, 10, 26, 12, tzinfo=UTC),
            [
                datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 02:30 CEST, not 02:30 CET
                datetime(2024, 10, 27, 7, tzinfo=UTC),  # 08:00 CET
                datetime(2024, 10, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
            ],
        ),
        # Weekends quiet: Saturday's and Monday's midnights, no Saturday or Sunday times.
        (
            {"night": "18:00", "day": "08:00", "weekends": "quiet"},
            at(7, 12),  # Friday 7 June 2024
            [
                at(7, 18),
                datetime(2024, 6, 7, 22, tzinfo=UTC),  # Saturday 00:00 CEST
                datetime(2024, 6, 9, 22, tzinfo=UTC),  # Monday 00:00 CEST
                at(10, 8),
            ],
        ),
    ],
)
def test_the_daemon_wakes_at_the_timetables_next_boundary(
    home: Home, timetable: dict[str, str], start: datetime, expected: list[datetime]
) -> None:
    """Each wake-up waits for the next boundary ``day_boundaries`` gives, DST days included:
    the night/day/weekend rules are computed once, for the mode and the wake-up alike."""
    t = Timetable.create(tz="Europe/Berlin", **timetable)
    store = SettingsStore(home.settings)
    store_timetable(store, t)
    assert boundaries_after(t, start, len(expected)) == expected
    jobs, now = Jobs(), start
    worker = _Worker(store, jobs, lambda instant: instant, clock=lambda: now)
    worker.run_once("start")
    woken = []
    for _ in expected:
        woken.append(jobs.fire())
        now = woken[-1]
        worker.run_once("boundary")
    assert woken == expected
    assert jobs.get_job(JOB_ID) == boundaries_after(t, now, 1)[0]


def test_a_tick_moves_the_wake_up_to_a_new_timetable_and_keeps_it_otherwise(home: Home) -> None:
    store = SettingsStore(home.settings)
    store_timetable(store, TT)
    jobs, now = Jobs(), at(5, 12)
    worker = _Worker(store, jobs, lambda instant: instant, clock=lambda: now)
    worker.run_once("start")
    assert jobs.jobs == {JOB_ID: at(5, 18)}
    now = at(5, 12, 1)
    worker.run_once("tick")
    assert jobs.jobs == {JOB_ID: at(5, 18)}
    store_timetable(store, Timetable.create(tz="Europe/Berlin", night="13:00", day="08:00"))
    worker.run_once("tick")
    assert jobs.jobs == {JOB_ID: at(5, 13)}
    clear_timetable(store)
    worker.run_once("tick")
    assert jobs.jobs == {}


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
            wait_for("performance", lambda: store.read().mode is Mode.PERFORMANCE)
            assert store.read().changed_by == "schedule"
            # Another process stores a new timetable with a boundary a second ahead: a
            # tick after it follows (there is no job for it in the first timetable).
            soon = datetime.now(UTC) + timedelta(seconds=1)
            store_timetable(store, Timetable.create(tz="UTC", rules=[_rule(soon, "quiet")]))
            wait_for("quiet", lambda: store.read().mode is Mode.QUIET)
            assert store.read().changed_at >= soon.replace(microsecond=0)
        finally:
            stop.set()
            t.join(WAIT_S)
    assert not t.is_alive()


# --- a real daemon process -----------------------------------------------------------------


def _rule(t: datetime, mode: str) -> str:
    """A daily rule at ``t`` to the second (the six-field form)."""
    return f"{t:%S %M %H} * * *={mode}"


def start_daemon(home: Home, *args: str, tick: float | None = None) -> subprocess.Popen[str]:
    """``perfmode schedule ARGS`` logging to ``home/daemon.log``; ``tick``: seconds between
    reconciles (default: the daemon's own minute)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(TICK_ENV, None)
    if tick is not None:
        env[TICK_ENV] = str(tick)
    return subprocess.Popen(
        [
            *PERFMODE,
            "schedule",
            *args,
            "--home",
            str(home.root),
            "--log-file",
            str(daemon_log_file(home)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def daemon_log_file(home: Home) -> Path:
    return home.root / "daemon.log"


def log_of(home: Home) -> str:
    try:
        return daemon_log_file(home).read_text(encoding="utf-8")
    except OSError:
        return ""


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def quiet_an_hour_ago(home: Home) -> None:
    home.settings.write_text(json.dumps(changed("quiet", datetime.now(UTC) - timedelta(hours=1))))


@pytest.fixture
def daemon(home: Home) -> Iterator[subprocess.Popen[str]]:
    """A running daemon whose timetable keeps the mode at quiet (no boundary to race)."""
    quiet_an_hour_ago(home)
    earlier = datetime.now(UTC) - timedelta(minutes=20)
    proc = start_daemon(home, "--tz", "UTC", "--rule", _rule(earlier, "quiet"))
    try:
        wait_for("the daemon to start", lambda: "timetable:" in log_of(home), proc=proc)
        yield proc
    finally:
        stop(proc)


def test_the_daemon_flips_settings_at_a_boundary(home: Home) -> None:
    """The boundary's own job flips the mode: the minute reconcile is kept at 60 s.

    The boundary is given when the daemon starts; a daemon that starts too slowly to be
    waiting for it is stopped and started again with a later one.
    """
    store = SettingsStore(home.settings)
    for margin in (5, 10, 20, 40):
        home.settings.write_text(
            json.dumps(changed("performance", datetime.now(UTC) - timedelta(hours=1)))
        )
        now = datetime.now(UTC).replace(microsecond=0)
        boundary = now + timedelta(seconds=margin)
        rules = ["--rule", _rule(now - timedelta(seconds=20), "quiet")]
        proc = start_daemon(home, "--tz", "UTC", *rules, "--rule", _rule(boundary, "performance"))
        try:
            # At start it applies the boundary in force (quiet, 20 s ago) over the older mode.
            wait_for("quiet", lambda: store.read().mode is Mode.QUIET, proc=proc)
            if datetime.now(UTC) > boundary - timedelta(seconds=1):
                continue
            wait_for("performance", lambda: store.read().mode is Mode.PERFORMANCE, proc=proc)
            s = store.read()
            assert s.changed_by == "schedule" and s.changed_at is not None
            # The job runs at the boundary; without it the next reconcile would be ~50 s late.
            assert boundary <= s.changed_at < boundary + timedelta(seconds=30)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=WAIT_S)
            assert f"⏰ {boundary:%H:%M:%S} UTC → performance (schedule)" in log_of(home)
            return
        finally:
            stop(proc)
    pytest.fail("the daemon never started a second before its boundary")


def test_a_second_daemon_is_refused_with_the_first_ones_pid(
    daemon: subprocess.Popen[str], home: Home
) -> None:
    result = run_perfmode("schedule", "--home", str(home.root))
    assert result.returncode == 1
    assert f"already runs for {home.root} (pid {daemon.pid})" in result.stderr
    assert daemon.poll() is None
    status = json.loads(run_perfmode("status", "--json", "--home", str(home.root)).stdout)
    assert status["schedule"]["daemon_pid"] == daemon.pid


def test_save_only_and_clear_reach_a_running_daemon(home: Home) -> None:
    quiet_an_hour_ago(home)
    earlier = datetime.now(UTC) - timedelta(minutes=20)
    proc = start_daemon(home, "--tz", "UTC", "--rule", _rule(earlier, "quiet"), tick=0.5)
    try:
        wait_for("the daemon to start", lambda: "timetable:" in log_of(home), proc=proc)
        store = SettingsStore(home.settings)
        assert store.read().mode is Mode.QUIET

        # Another shell stores a timetable whose last boundary (10 min ago) says performance:
        # the running daemon re-reads it and applies it.
        ten_ago = datetime.now(UTC) - timedelta(minutes=10)
        saved = run_perfmode(
            "schedule", "--tz", "UTC", "--rule", _rule(ten_ago, "performance"), "--save-only",
            "--home", str(home.root),
        )  # fmt: skip
        assert saved.returncode == 0, saved.stderr
        wait_for("the daemon to follow", lambda: store.read().mode is Mode.PERFORMANCE, proc=proc)
        assert store.read().changed_by == "schedule"

        cleared = run_perfmode("schedule", "--clear", "--home", str(home.root))
        assert cleared.returncode == 0, cleared.stderr
        wait_for("the daemon to go idle", lambda: "no schedule in settings.json" in log_of(home))
        report = json.loads(run_perfmode("status", "--json", "--home", str(home.root)).stdout)
        assert report["schedule"]["daemon_pid"] == proc.pid
        assert report["schedule"]["next_switch"] is None
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 0
    finally:
        stop(proc)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_the_daemon_exits_0_on_sigterm_and_removes_its_pid_file(
    daemon: subprocess.Popen[str], home: Home
) -> None:
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=WAIT_S)
    assert daemon.returncode == 0, err
    assert "stopped" in log_of(home)
    assert not home.daemon_pid.exists()
    assert running_daemon_pid(home) is None
    assert Path(home.daemon_lock).exists()  # lock files are never deleted


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_sigterm_while_the_daemon_starts_still_exits_0(home: Home) -> None:
    """A service manager may stop the daemon before it is running: still a clean exit 0.

    Holding settings.json's lock keeps a starting daemon between taking its own lock (the
    pid file appears) and storing its timetable, before it starts.
    """
    with FileLock(home.settings_lock):
        proc = start_daemon(home, "--tz", "UTC", "--night", "18:00", "--day", "08:00")
        try:
            wait_for("the pid file", home.daemon_pid.exists, proc=proc)
            proc.send_signal(signal.SIGTERM)
        except BaseException:
            stop(proc)
            raise
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert "stopped" in log_of(home) and "started" not in log_of(home)
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
