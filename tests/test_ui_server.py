"""The event stream of a real `perfmode ui`: changes made elsewhere are pushed; stopping is
clean, and leaves the trainers started from the page training."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Iterator

import psutil

from perfmode.base.home import Home
from perfmode.base.modes import Mode
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import read_status, write_config
from tests.uikit import UiServer, kill_trainers_of


def events(ui: UiServer) -> Iterator[tuple[str, dict]]:
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=120)
    conn.request("GET", "/api/events")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("content-type").startswith("text/event-stream")
    event = None
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            yield event, json.loads(line[6:])
            event = None


def next_state(stream: Iterator[tuple[str, dict]], check) -> dict:
    for event, data in stream:
        if event == "state" and check(data):
            return data
    raise AssertionError("the stream ended")


def test_changes_made_elsewhere_are_pushed(home: Home) -> None:
    ui = UiServer(home)
    try:
        stream = events(ui)
        first = next_state(stream, lambda s: True)
        assert first["status"]["requested_mode"] == "quiet"
        # One choice per mode the library knows: a mode added there appears by itself.
        assert [m["value"] for m in first["modes"]] == [m.value for m in Mode]

        run_perfmode("set", "performance", "--home", str(home.root))
        state = next_state(stream, lambda s: s["status"]["requested_mode"] == "performance")
        assert state["status"]["changed_by"] == "cli"

        # write_text truncates first: the stream may show the empty file on the way.
        home.settings.write_text('{"performance_mode": "quiet"}')
        state = next_state(stream, lambda s: s["status"]["changed_by"] == "hand edit")
        assert state["status"]["requested_mode"] == "quiet"

        home.settings.write_text("[1, 2]")
        state = next_state(
            stream, lambda s: "holds a JSON list" in (s["status"]["settings_problem"] or "")
        )
        assert state["status"]["settings_problem"].endswith("not an object; using quiet")

        write_config(home.root / "night.yaml")
        state = next_state(stream, lambda s: "night.yaml" in s["configs"])
        assert state["configs"] == ["built-in default", "night.yaml"]
    finally:
        ui.stop()


def test_sigterm_with_a_page_open_exits_0_at_once(home: Home) -> None:
    ui = UiServer(home)
    stream = events(ui)
    next_state(stream, lambda s: True)
    ui.proc.send_signal(signal.SIGTERM)
    assert ui.proc.wait(timeout=60) == 0
    # The open stream ends instead of holding shutdown up (uvicorn would wait, then cancel).
    assert list(stream) == []
    time.sleep(0.2)
    assert "Traceback" not in ui.output and "ERROR" not in ui.output


def test_ctrl_c_stops_the_page_and_leaves_its_trainers_training(home: Home) -> None:
    write_config(home.root / "tiny.yaml", training={"total_timesteps": 10**7})
    ui = UiServer(home, own_group=True)  # a shell job: the terminal's Ctrl-C reaches its group

    def steps() -> int:
        return read_status(home, "r1").get("timesteps") or 0

    try:
        code, body = ui.post("/api/runs/start", {"run": "r1", "config": "tiny.yaml"})
        assert code == 200, body
        wait_for("the trainer's first update", lambda: steps() > 0, proc=ui.proc)
        trainer = psutil.Process(read_status(home, "r1")["pid"])
        os.killpg(ui.proc.pid, signal.SIGINT)  # Ctrl-C where `perfmode ui` runs
        assert ui.proc.wait(timeout=60) == 0
        time.sleep(0.2)  # the reader takes the last lines
        assert "Traceback" not in ui.output, ui.output
        before = steps()
        wait_for("more steps or the trainer's end", lambda: steps() > before or not alive(trainer))
        assert alive(trainer), (
            f"the page's Ctrl-C stopped its trainer ({read_status(home, 'r1')['state']})"
        )
        assert read_status(home, "r1")["state"] == "training"
        trainer.terminate()  # it saves and exits 0
        assert trainer.wait(timeout=120) in (0, None)  # None: not our child, its code unknown
        assert read_status(home, "r1")["state"] == "stopped"
    finally:
        ui.stop()
        kill_trainers_of(home)


def alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
