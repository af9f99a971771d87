from __future__ import annotations

import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from filelock import FileLock

from perfmode.errors import PerfmodeError, UsageError
from perfmode.home import Home
from perfmode.settings import (
    HAND_EDIT,
    Mode,
    SettingsStore,
    SettingsWatcher,
    parse_mode,
    parse_settings,
)


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
