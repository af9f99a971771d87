"""The page's view of the home's sweeps: GET /api/sweeps and the script that draws it."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from perfmode.base.home import Home
from tests.conftest import wait_for


def _study(home: Home, name: str) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = home.root / "sweeps" / f"{name}.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(
        JournalFileBackend(str(path), JournalFileOpenLock(str(path)))
    )
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for i, (state, value) in enumerate(
        [("COMPLETE", 0.05), ("PRUNED", None), ("COMPLETE", 0.12), ("RUNNING", None)]
    ):
        t = study.ask()
        t.suggest_float("ppo.learning_rate", 1e-5, 1e-3, log=True)
        t.set_user_attr("run", f"sweep-{name}-{i}")
        t.set_user_attr("host", "box")
        t.report(0.01 * i, 1)
        if state != "RUNNING":
            study.tell(t, value, state=getattr(optuna.trial.TrialState, state))


def _get(home: Home, path: str) -> tuple[int, Any]:
    import uvicorn

    from perfmode.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(home), log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        wait_for("the server", lambda: server.started, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        return resp.status, body
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def test_api_sweeps_lists_trials_states_values_and_the_best_so_far(home: Home) -> None:
    _study(home, "lr")
    (home.root / "sweeps" / "broken.journal").write_text("not a journal\n")
    status, body = _get(home, "/api/sweeps")
    assert status == 200, body
    sweeps = {s["sweep"]: s for s in body["sweeps"]}
    lr = sweeps["lr"]
    assert [t["state"] for t in lr["trials"]] == ["complete", "pruned", "complete", "running"]
    assert [t["value"] for t in lr["trials"]] == [0.05, None, 0.12, None]
    assert lr["trials"][3]["last_report"] == {"report": 1, "value": 0.03}
    assert lr["best"]["number"] == 2 and lr["best"]["run"] == "sweep-lr-2"
    assert lr["best_so_far"] == [{"number": 0, "best": 0.05}, {"number": 2, "best": 0.12}]
    assert "problem" in sweeps["broken"]  # a damaged journal is shown, not fatal


def test_the_page_loads_the_sweeps_script() -> None:
    static = Path(__file__).resolve().parent.parent / "src" / "perfmode" / "web" / "static"
    assert (
        '<script src="/static/sweeps.js" type="module"></script>'
        in (static / "index.html").read_text()
    )
    script = (static / "sweeps.js").read_text()
    assert "/api/sweeps" in script and "innerHTML" not in script  # text only, never markup


def _snapshot(home: Home, name: str, text: str) -> Path:
    path = home.root / "sweeps" / f"{name}.study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


PG_ROW = {
    "number": 4,
    "state": "complete",
    "value": 0.0731,
    "last_report": {"report": 3, "value": 0.0731},
    "params": {"ppo.gamma": 0.99},
    "steps": 4096,
    "run": "sweep-pg-4",
    "host": "other-box",
    "home": "/elsewhere",
    "error": None,
    "retries": 0,
    "started": "2026-12-07T03:00:00+00:00",
    "finished": "2026-12-07T03:01:00+00:00",
}


def database_snapshot(home: Home) -> None:
    """Study "pg" in a database, as the home's sweep writes it: one trial, on another box."""
    from perfmode.sweep.snapshot import write_snapshot

    write_snapshot(
        home,
        "pg",
        {
            "sweep": "pg",
            "storage": "postgresql://me:***@db/perfmode",
            "objective": "validation total return",
            "counts": {"complete": 1},
            "best": PG_ROW,
            "best_so_far": [{"number": 4, "best": 0.0731}],
            "trials": [PG_ROW],
        },
    )


def test_a_study_outside_the_home_is_shown_from_its_snapshot_with_its_time(home: Home) -> None:
    _study(home, "lr")
    database_snapshot(home)
    status, body = _get(home, "/api/sweeps")
    assert status == 200, body
    sweeps = {s["sweep"]: s for s in body["sweeps"]}
    assert set(sweeps) == {"lr", "pg"}
    pg = sweeps["pg"]
    assert pg["storage"] == "postgresql://me:***@db/perfmode" and pg["as_of"]
    assert pg["trials"] == [PG_ROW] and pg["best"] == PG_ROW
    assert "as_of" not in sweeps["lr"]  # a journal in the home is read as it is now


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"trials": 5}',
        '{"trials": [1, "x", {"number": "7"}], "counts": [], "best": 3}',
        '{"trials": [{"number": 1, "value": NaN, "params": {"a": Infinity, "b": [1]},'
        ' "steps": 1e400, "state": {"x": 1}, "last_report": {"value": NaN}}],'
        ' "best_so_far": [{"number": 1, "best": NaN}, "z"], "counts": {"complete": "9"}}',
        '{"trials": [' + ",".join(['{"number": 1}'] * 400_000) + "]}",  # over 4 MiB: unread
    ],
    ids=["garbage", "list", "trials-not-list", "wrong-types", "non-finite", "huge"],
)
def test_a_damaged_snapshot_is_one_problem_line_or_its_sane_rows(home: Home, text: str) -> None:
    _snapshot(home, "bad", text)
    status, body = _get(home, "/api/sweeps")
    assert status == 200, body
    (bad,) = body["sweeps"]
    if "problem" in bad:
        assert bad["problem"].startswith("cannot read bad.study.json")
    else:  # what is left is what the page can draw: numbers that are numbers, no NaN
        for t in bad["trials"]:
            assert isinstance(t["number"], int) and isinstance(t["params"], dict)
            assert t["value"] is None or isinstance(t["value"], float)
        assert all(isinstance(v, int) for v in bad["counts"].values())


def test_a_fifo_or_a_folder_at_a_snapshot_does_not_hang_the_page(home: Home) -> None:
    folder = home.root / "sweeps"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "fifo.study.json")
    (folder / "dir.study.json").mkdir()
    status, body = _get(home, "/api/sweeps")
    assert status == 200, body
    assert {s["sweep"]: "problem" in s for s in body["sweeps"]} == {"fifo": True, "dir": True}
