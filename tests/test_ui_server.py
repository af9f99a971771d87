"""The event stream of a real `perfmode ui`: changes made elsewhere are pushed; stopping is clean."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Iterator

from perfmode.base.home import Home
from perfmode.base.modes import Mode
from tests.conftest import run_perfmode
from tests.trainkit import write_config
from tests.uikit import UiServer


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
