from __future__ import annotations

import json
import logging
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfmode.base.home import Home
from perfmode.base.modes import Mode
from perfmode.base.smallfile import MAX_BYTES
from perfmode.cli.mode import status_lines
from perfmode.errors import PerfmodeError, UsageError
from perfmode.settings.store import (
    HAND_EDIT,
    SettingsStore,
    SettingsWatcher,
    parse_mode,
    parse_settings,
)
from perfmode.status.report import build_status


def store_of(home: Home, **kw) -> SettingsStore:
    return SettingsStore(home.settings, **kw)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_hand_written_minimal_file_is_valid(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "performance"}')
    s = store_of(home).read()
    assert s.mode is Mode.PERFORMANCE
    assert s.ok
    assert s.changed_by == HAND_EDIT
    assert s.changed_at is not None  # the file's mtime


def test_set_mode_records_who_and_when_and_keeps_unknown_keys(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet", "my_note": [1, 2]}')
    before = datetime.now(UTC)
    s = store_of(home).set_mode("performance", changed_by="cli")
    data = json.loads(home.settings.read_text())
    assert data["performance_mode"] == "performance"
    assert data["my_note"] == [1, 2]
    assert data["changed_by"] == "cli"
    assert s.changed_by == "cli"
    assert s.changed_at is not None and s.changed_at >= before.replace(microsecond=0)
    assert data["changed_at"].endswith("Z")
    assert leftovers(home.root) == []


def test_hand_edit_after_a_cli_write_is_seen_as_a_hand_edit(home: Home) -> None:
    store = store_of(home)
    store.set_mode("quiet", changed_by="cli")
    data = json.loads(home.settings.read_text())
    data["performance_mode"] = "performance"
    home.settings.write_text(json.dumps(data))
    s = store.read()
    assert s.mode is Mode.PERFORMANCE
    assert s.changed_by == HAND_EDIT


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"performance_mode": "perf', "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'"performance"', "not an object"),
        (b'{"performance_mode": "turbo"}', "valid modes: quiet, performance"),
        (b'{"performance_mode": 3}', "valid modes"),
        (b'{"mode": "performance"}', "no 'performance_mode' key"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
def test_bad_files_read_as_quiet_with_a_reason(raw: bytes, reason: str) -> None:
    s = parse_settings(raw)
    assert s.mode is Mode.QUIET
    assert not s.ok
    assert reason in s.problem
    assert "\n" not in s.problem


def test_missing_file_reads_as_quiet_the_normal_first_state(home: Home) -> None:
    s = store_of(home).read()
    assert s.mode is Mode.QUIET
    assert s.missing and s.ok and s.problem is None


def test_mode_values_are_forgiving_about_case_and_spaces() -> None:
    assert parse_settings(b'{"performance_mode": " Performance "}').mode is Mode.PERFORMANCE
    assert parse_mode("QUIET") is Mode.QUIET
    with pytest.raises(UsageError, match="valid modes: quiet, performance"):
        parse_mode("fast")


def test_writer_keeps_a_copy_of_a_corrupt_file(home: Home) -> None:
    garbage = '{"performance_mode": "performance", oops'
    home.settings.write_text(garbage)
    store_of(home).set_mode("performance", changed_by="cli")
    copies = list(home.root.glob("settings.json.corrupt-*"))
    assert len(copies) == 1
    assert copies[0].read_text() == garbage
    assert store_of(home).read().ok


def test_write_keeps_file_permissions(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet"}')
    os.chmod(home.settings, 0o600)
    store_of(home).set_mode("performance", changed_by="cli")
    assert stat.S_IMODE(home.settings.stat().st_mode) == 0o600


def test_lock_timeout_is_a_clear_error_and_writes_nothing(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet"}')
    before = home.settings.read_bytes()
    store = store_of(home, lock_timeout=0.2)
    with FileLock(store.lock_path), pytest.raises(PerfmodeError, match="nothing was written"):
        store.set_mode("performance", changed_by="cli")
    assert home.settings.read_bytes() == before
    assert store.lock_path.exists()  # filelock keeps it on purpose; so do we
    assert leftovers(home.root) == []


def test_update_that_declines_writes_nothing(home: Home) -> None:
    store = store_of(home)
    store.set_mode("quiet", changed_by="cli")
    sig = store.signature()
    store.update(lambda data, current: False)
    assert store.signature() == sig


def test_failed_write_leaves_old_file_and_no_temp(home: Home, monkeypatch) -> None:
    store = store_of(home)
    store.set_mode("quiet", changed_by="cli")
    before = home.settings.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(PerfmodeError, match="No space left"):
        store.set_mode("performance", changed_by="cli")
    assert home.settings.read_bytes() == before
    assert leftovers(home.root) == []


def test_signature_changes_on_every_write(home: Home) -> None:
    store = store_of(home)
    assert store.signature() is None
    store.set_mode("quiet", changed_by="cli")
    first = store.signature()
    store.set_mode("quiet", changed_by="cli")
    assert store.signature() != first


def test_watcher_rereads_only_on_change_and_warns_once(home: Home, caplog) -> None:
    store = store_of(home)
    home.settings.write_text("{broken")
    log = logging.getLogger("test.watcher")
    with caplog.at_level(logging.WARNING, logger="test.watcher"):
        watcher = SettingsWatcher(store, log)
        assert watcher.current.mode is Mode.QUIET
        assert watcher.poll() is None
        # The same problem again (a new broken write) is not repeated.
        home.settings.write_text("{broken again")
        assert watcher.poll() is not None
    assert len([r for r in caplog.records if "not valid JSON" in r.message]) == 1
    store.set_mode("performance", changed_by="cli")
    new = watcher.poll()
    assert new is not None and new.mode is Mode.PERFORMANCE
    assert watcher.poll() is None


def test_a_write_of_other_keys_keeps_the_time_of_a_hand_edit(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "performance"}')
    os.utime(home.settings, (1_700_000_000, 1_700_000_000))
    store = store_of(home)
    store.update(lambda data, current: data.update(note="x"))
    s = store.read()
    assert s.mode is Mode.PERFORMANCE
    assert s.changed_by == HAND_EDIT
    assert s.changed_at == datetime.fromtimestamp(1_700_000_000, UTC)


# --- nothing at the path can stop, hang or bloat a reader ------------------------------------

HOSTILE = [
    (
        "digits",
        b'{"performance_mode": "performance", "n": ' + b"1" * 5000 + b"}",
        "too many digits",
    ),
    ("deep", b"[" * 100_000, "nested too deep"),
    ("deep_object", b'{"a": ' * 100_000, "nested too deep"),
    ("nul", b'{"performance_mode": "performance"\x00}', "not valid JSON"),
    ("huge_mode", b'{"performance_mode": "' + b"x" * 500_000 + b'"}', "valid modes"),
]


@pytest.mark.parametrize(("name", "raw", "problem"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_extreme_json_reads_as_quiet_with_a_short_reason(
    home: Home, name: str, raw: bytes, problem: str
) -> None:
    home.settings.write_bytes(raw)
    s = store_of(home).read()
    assert s.mode is Mode.QUIET
    assert problem in s.problem
    assert len(s.problem) < 300  # a hand-typed megabyte is not rendered into the message


def test_a_file_over_the_limit_is_not_read_and_not_replaced(home: Home) -> None:
    big = b'{"performance_mode": "performance", "pad": "' + b"x" * MAX_BYTES + b'"}'
    home.settings.write_bytes(big)
    s = store_of(home).read()
    assert s.mode is Mode.QUIET and "larger than the 1.0 MiB" in s.problem
    with pytest.raises(PerfmodeError, match=r"larger than the 1\.0 MiB.*nothing was changed"):
        store_of(home).set_mode("quiet", changed_by="cli")
    assert home.settings.read_bytes() == big
    assert not list(home.root.glob("settings.json.corrupt-*"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_neither_blocks_a_reader_nor_is_replaced(home: Home) -> None:
    os.mkfifo(home.settings)
    # In a thread with a ceiling: a regression must fail, not hang the suite.
    result: list = []
    t = threading.Thread(target=lambda: result.append(store_of(home).read()), daemon=True)
    t.start()
    t.join(60)
    assert result, "reading a FIFO blocked"
    assert result[0].mode is Mode.QUIET and "FIFO" in result[0].problem
    with pytest.raises(PerfmodeError, match=r"FIFO.*Move it away"):
        store_of(home).set_mode("performance", changed_by="cli")
    assert stat.S_ISFIFO(os.lstat(home.settings).st_mode)


def test_a_symlink_to_a_device_is_not_read(home: Home) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    home.settings.symlink_to("/dev/zero")
    s = store_of(home).read()
    assert s.mode is Mode.QUIET and "character device" in s.problem


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "99999-01-01T00:00:00Z", "x" * 9000],
)
def test_a_changed_at_out_of_range_reads_as_unknown(home: Home, stamp: str) -> None:
    data = {"performance_mode": "performance", "changed_to": "performance", "changed_by": "cli"}
    home.settings.write_text(json.dumps({**data, "changed_at": stamp}))
    s = store_of(home).read()
    assert s.mode is Mode.PERFORMANCE and s.ok
    assert s.changed_at is None


def test_an_mtime_out_of_range_is_not_a_crash(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "performance"}')
    try:
        os.utime(home.settings, (2**40, 2**40))  # year ~36,800
    except (OSError, OverflowError):
        pytest.skip("the file system cannot hold that mtime")
    s = store_of(home).read()
    assert s.mode is Mode.PERFORMANCE and s.changed_by == HAND_EDIT


# --- a writer never wipes what a person typed ------------------------------------------------


def test_an_edit_between_read_and_replace_is_kept(home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet", "mine": 1}')
    calls = []

    def change(data: dict, current) -> None:
        if not calls:  # a person saves in place while the writer works
            with open(home.settings, "r+") as f:
                f.truncate()
                f.write('{"performance_mode": "quiet", "mine": 2, "new": "typed"}')
        calls.append(dict(data))
        data["performance_mode"] = "performance"

    store_of(home).update(change)
    final = json.loads(home.settings.read_text())
    assert (final["performance_mode"], final["mine"], final["new"]) == ("performance", 2, "typed")
    assert len(calls) == 2 and calls[1]["mine"] == 2


def test_an_in_place_save_caught_between_truncate_and_write_is_waited_for(home: Home) -> None:
    home.settings.write_bytes(b"")  # the editor has truncated...
    content = '{"performance_mode": "quiet", "schedule": null, "mine": "typed"}'
    writer = threading.Timer(0.02, lambda: home.settings.write_text(content))  # ...and writes
    writer.start()
    store_of(home).set_mode("performance", changed_by="cli")
    writer.join()
    final = json.loads(home.settings.read_text())
    assert final["mine"] == "typed" and final["performance_mode"] == "performance"


def test_an_empty_file_is_replaced_without_a_copy(home: Home) -> None:
    home.settings.write_bytes(b"  \n")
    store_of(home).set_mode("performance", changed_by="cli")
    assert store_of(home).read().mode is Mode.PERFORMANCE
    assert not list(home.root.glob("settings.json.corrupt-*"))


@pytest.mark.parametrize("raw", [b"[1, 2]", b'{"a": 1,', b"[" * 100_000])
def test_anything_unparsable_is_kept_before_it_is_replaced(home: Home, raw: bytes) -> None:
    home.settings.write_bytes(raw)
    store_of(home).set_mode("performance", changed_by="cli")
    copies = list(home.root.glob("settings.json.corrupt-*"))
    assert [c.read_bytes() for c in copies] == [raw]


def test_a_folder_that_cannot_be_written_is_one_clear_error_at_once(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "not-a-folder" / "settings.json")
    (tmp_path / "not-a-folder").write_text("x")  # a file where the home should be
    with pytest.raises(PerfmodeError, match=r"cannot write in .*Use a home folder you can write"):
        store.set_mode("performance", changed_by="cli")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["quiet", "performance", " Performance ", "2099-01-01T00:00:00Z"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SETTINGS_OBJECTS = st.dictionaries(
    st.sampled_from(
        ["performance_mode", "changed_at", "changed_by", "changed_to", "schedule", "x"]
    ),
    JSON_VALUES,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(obj=SETTINGS_OBJECTS | JSON_VALUES, raw=st.none() | st.binary(max_size=64))
def test_any_file_reads_and_a_write_keeps_every_key(home: Home, monkeypatch, obj, raw) -> None:
    monkeypatch.setattr(
        "perfmode.base.safereplace.SETTLE_S", 0.001
    )  # waiting out editors: tested above
    content = raw if raw is not None else json.dumps(obj).encode()
    home.settings.write_bytes(content)
    s = store_of(home).read()
    assert isinstance(s.mode, Mode)
    store_of(home).set_mode("performance", changed_by="cli")
    after = json.loads(home.settings.read_text())
    assert after["performance_mode"] == "performance"
    if isinstance(s.data, dict):
        bookkeeping = {"performance_mode", "changed_at", "changed_by", "changed_to"}
        assert {k: v for k, v in s.data.items() if k not in bookkeeping} == {
            k: v for k, v in after.items() if k not in bookkeeping
        }
    for copy in home.root.glob("settings.json.corrupt-*"):
        assert copy.read_bytes() == content
        copy.unlink()


HOLD = st.fixed_dictionaries(
    {},
    optional={
        k: JSON_VALUES | st.sampled_from(["quiet", "paused", "2999-01-01T00:00:00Z", 1])
        for k in ("id", "mode", "until", "pid", "pid_started", "reason", "set_at")
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    obj=SETTINGS_OBJECTS,
    holds=st.none() | st.lists(HOLD | JSON_VALUES, max_size=3),
)
def test_status_never_crashes_on_any_settings_json(home: Home, obj, holds) -> None:
    if holds is not None:
        obj = {**obj, "holds": holds}
    home.settings.write_text(json.dumps(obj))
    report = build_status(home)
    json.dumps(report, allow_nan=False)
    for label, value in status_lines(report):
        assert isinstance(value, str) and len(value) < 1000, (label, value)
