"""The typed status: perfmode 0.1.0's status.json reads back whole, garbage never raises,
a field added to the model needs no code to write or read it, and the page's script reads
only keys the model writes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.cli.mode import status_lines
from perfmode.status.model import (
    FLAT_SECTIONS,
    BudgetStatus,
    GpuStatus,
    OomEvent,
    RunSection,
    RunView,
    ThreadsStatus,
    TrainerStatus,
    run_keys,
)
from perfmode.status.report import build_status

DATA = Path(__file__).parent / "data" / "status"
APP_JS = Path(__file__).parent.parent / "src" / "perfmode" / "web" / "static" / "app.js"


@pytest.mark.parametrize("name", ["0.1.0-training.json", "0.1.0-finished.json"])
def test_a_status_json_written_by_0_1_0_reads_back_unchanged(name: str) -> None:
    old = json.loads((DATA / name).read_text())
    status = TrainerStatus.from_json(old)
    assert status.to_json() == old  # every key kept, with its value and its type
    assert status.run.pid == old["pid"] and status.knobs.batch_size == old["batch_size"]
    assert status.threads.choice == "profile" and status.gpu.problem == old["gpu"]["problem"]


def test_the_cli_table_reads_an_old_file() -> None:
    old = json.loads((DATA / "0.1.0-training.json").read_text())
    view = RunView(TrainerStatus.from_json(old), running=True, alive=True)
    report = {
        "requested_mode": "quiet",
        "changed_by": "cli",
        "changed_at": old["applied_at"],
        "settings_ok": True,
        "settings_problem": None,
        "settings_file": "/h/settings.json",
        "trainer": view.to_json(),
        "runs": [view.to_json()],
        "schedule": None,
    }
    shown = dict(status_lines(report))
    assert shown["Applied"].startswith("quiet (batch 32, epochs 2, threads 1, cpu 50%)")
    assert shown["Progress"] == "3,840 / 4,096 steps (93.8%), 1,205 steps/s"
    assert shown["Checkpoint"].endswith("step_0000003840 (3,840 steps)")


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {"pid": True, "fps": float("nan"), "timesteps": 1.5, "run": 7},
        {"threads": [1], "gpu": "hot", "oom_events": {"a": 1}},
        {"oom_events": [1, None, {"failed_batch": "big", "new_batch": 8}]},
        {"fps": 10**400, "cpu_share": -1e308, "batch_size": 2**80},
    ],
)
def test_garbage_reads_as_none_never_raises(data: object) -> None:
    status = TrainerStatus.from_json(data)
    json.dumps(status.to_json(), allow_nan=False)
    if isinstance(data, dict) and "pid" in data:
        assert (status.run.pid, status.progress.fps, status.progress.timesteps) == (None,) * 3
        assert status.run.run is None
    if isinstance(data, dict) and "oom_events" in data and isinstance(data["oom_events"], list):
        assert status.oom_events == [OomEvent(failed_batch=None, new_batch=8)]
    if isinstance(data, dict) and "gpu" in data:
        assert (status.threads, status.gpu) == (ThreadsStatus(), GpuStatus())


def test_a_missing_field_is_an_attribute_error_not_a_silent_miss() -> None:
    status = TrainerStatus.from_json({"applied_mode": "quiet"})
    assert status.mode.applied_mode == "quiet"
    with pytest.raises(AttributeError):
        status.mode.aplied_mode  # noqa: B018  # the typo a dict lookup would have hidden


# Keys of a status report's top level the page reads from `st` (a report or a run).
REPORT_KEYS = {"requested_mode", "changed_by", "changed_at", "settings_ok", "settings_problem"}
REPORT_KEYS |= {"settings_file", "schedule", "runs"}
PAGE_ONLY = {"gpu_lines"}  # added by web/snapshot.py for the page


def test_the_page_reads_only_keys_the_status_model_writes() -> None:
    script = APP_JS.read_text()
    run = set(re.findall(r"\bst\.([a-z_]+)", script))
    # `t` is a run's threads, or a run in the list of runs.
    threads = set(re.findall(r"\bt\.([a-z_]+)", script))
    assert run, "app.js no longer reads a run as `st`: update this check"
    unknown = run - run_keys() - REPORT_KEYS - PAGE_ONLY
    assert not unknown, f"app.js reads keys no status has: {sorted(unknown)}"
    unknown = threads - {f.name for f in fields(ThreadsStatus)} - run_keys()
    assert not unknown, f"app.js reads keys no status has: {sorted(unknown)}"


def test_perfmode_status_of_a_home_shows_an_old_file_as_it_was(home: Home) -> None:
    old = (DATA / "0.1.0-finished.json").read_text()
    home.run_dir("default").mkdir(parents=True, exist_ok=True)
    home.status_file("default").write_text(old)
    report = build_status(home)
    (run,) = report["runs"]
    assert {k: run[k] for k in json.loads(old)} == json.loads(old)
    # Nothing the file did not have, besides what the report adds about the process.
    assert set(run) - set(json.loads(old)) == {
        "running",
        "alive",
        "suspended",
        "not_responding_since",
    }
    assert set(run) <= run_keys()


# A field added since 0.1.0, as adding one is done: a line in its section, nothing else.
@dataclass
class RunWithNote(RunSection):
    note: str | None = None


@dataclass
class StatusWithNote(TrainerStatus):
    run: RunWithNote = field(default_factory=RunWithNote)


def test_a_new_field_is_left_out_while_none_and_read_back_once_set() -> None:
    old = json.loads((DATA / "0.1.0-training.json").read_text())
    status = StatusWithNote.from_json(old)
    assert status.run.note is None
    assert status.to_json() == old  # an old file stays the same file
    status.run.note = "hello"
    written = status.to_json()
    assert written == {**old, "note": "hello"}
    assert StatusWithNote.from_json(written).run.note == "hello"
    # Sections added since are left out the same way while nothing is in them.
    assert "budget" not in TrainerStatus().to_json()
    assert TrainerStatus(budget=BudgetStatus(state="waiting")).to_json()["budget"] == {
        "state": "waiting"
    }


def test_the_keys_written_as_null_are_exactly_the_0_1_0_files() -> None:
    old = json.loads((DATA / "0.1.0-training.json").read_text())
    written = TrainerStatus().to_json()  # every field None, every list empty
    assert set(written) == set(old)
    for name in ("threads", "gpu"):
        assert set(written[name]) == set(old[name])


def test_no_two_flat_sections_share_a_key() -> None:
    # Their keys sit side by side at the top of the file: a shared name would be one key.
    keys = [f.name for name in FLAT_SECTIONS for f in fields(getattr(TrainerStatus(), name))]
    assert len(keys) == len(set(keys))
