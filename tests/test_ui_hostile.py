"""The page's server against what a home or a request can hold: planted links and FIFOs,
huge metrics, deep or endless bodies. A real `perfmode ui` process; nothing may hang it."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.web.metrics import MAX_POINTS
from tests.uikit import UiServer, kill_trainers_of

START = {"run": "r1", "config": "built-in default"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    home = Home(tmp_path_factory.mktemp("uihome"))
    server = UiServer(home)
    yield server, home
    server.stop()
    kill_trainers_of(home)


def _quick_get(server: UiServer, path: str) -> int:
    status, _ = server.request("GET", path)
    return status


def test_a_planted_symlink_as_the_runs_log_is_not_followed(served, tmp_path: Path) -> None:
    server, home = served
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (home.root / ".perfmode-ui").mkdir(exist_ok=True)
    (home.root / ".perfmode-ui" / "r1.log").symlink_to(target)
    status, body = server.post("/api/runs/start", START)
    assert status == 409 and "symlink" in body["error"], body
    assert target.read_text() == "keep me"
    assert not home.status_file("r1").exists()


def test_a_planted_hard_link_as_the_runs_log_is_refused_untouched(served, tmp_path: Path) -> None:
    server, home = served
    target = home.root.parent / f"{tmp_path.name}-precious.txt"  # same file system: linkable
    target.write_text("keep me")
    (home.root / ".perfmode-ui").mkdir(exist_ok=True)
    os.link(target, home.root / ".perfmode-ui" / "r3.log")
    status, body = server.post("/api/runs/start", {**START, "run": "r3"})
    assert status == 409 and "hard link" in body["error"], body
    assert "\n" not in body["error"]
    assert target.read_text() == "keep me"
    assert not home.status_file("r3").exists()


def test_a_planted_link_as_the_pages_output_folder_is_not_followed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "r1.log").write_text("keep me")
    (home.root / ".perfmode-ui").symlink_to(elsewhere)
    server = UiServer(home)
    try:
        status, body = server.post("/api/runs/start", START)
        assert status == 409 and "symlink" in body["error"], body
        assert "\n" not in body["error"]
    finally:
        server.stop()
        kill_trainers_of(home)
    assert (elsewhere / "r1.log").read_text() == "keep me"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["r1.log"]
    assert not home.status_file("r1").exists()


def test_a_planted_fifo_as_the_runs_log_is_refused_and_blocks_nothing(served) -> None:
    server, home = served
    (home.root / ".perfmode-ui").mkdir(exist_ok=True)
    os.mkfifo(home.root / ".perfmode-ui" / "r2.log")
    status, body = server.post("/api/runs/start", {**START, "run": "r2"})
    assert status == 409 and "not a regular file" in body["error"], body
    assert _quick_get(server, "/static/app.js") in (200, 404)
    assert server.request("GET", "/api/state")[0] == 200


def test_a_deeply_nested_body_is_a_400_line(served) -> None:
    server, _ = served
    status, body = server.post("/api/mode", b"[" * 2000 + b"]" * 2000)  # 4 KB
    assert status == 400 and "not JSON" in body["error"], body


def test_a_huge_body_is_refused_before_it_is_read(served) -> None:
    server, _ = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        head = (
            "POST /api/mode HTTP/1.1\r\n"
            f"Host: {server.hostport}\r\nOrigin: http://{server.hostport}\r\n"
            "Content-Type: application/json\r\nContent-Length: 400000000\r\n\r\n"
        )
        s.sendall(head.encode() + b" " * 65536)  # a sliver of the 400 MB announced
        answer = ""
        while "too large" not in answer and (part := s.recv(65536)):
            answer += part.decode("latin-1")
    assert answer.startswith("HTTP/1.1 400"), answer[:200]
    assert "too large" in answer


def test_a_huge_metrics_file_gives_a_bounded_first_event_at_once(served) -> None:
    server, home = served
    run_dir = home.run_dir("big")
    run_dir.mkdir(parents=True)
    row = "{},2026-12-01T00:00:00Z,{},1000.0,1.0,0.5\n"
    with open(home.metrics_file("big"), "w") as f:  # about 40 MB, the mode flips every row
        f.write("timesteps,time,mode,fps,cpu_cores,ep_rew_mean\n")
        for block in range(0, 900_000, 10_000):
            f.write(
                "".join(
                    row.format(i, "quiet" if i % 2 else "performance")
                    for i in range(block, block + 10_000)
                )
            )
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", "/api/events")
        resp = conn.getresponse()
        assert resp.status == 200
        event, size = None, 0
        while True:
            line = resp.readline()
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: ") and event == b"metrics":
                size = len(line)
                data = json.loads(line[6:])
                if data["run"] == "big":
                    break
    finally:
        conn.close()
    took = time.monotonic() - t0
    assert size < 2_000_000, size
    assert len(data["cols"]["steps"]) <= 2 * MAX_POINTS + 2
    assert data["cols"]["steps"][-1] == 899_999  # the newest rows are there
    assert server.request("GET", "/api/state")[0] == 200
    print(f"first metrics event: {size:,} bytes after {took:.1f} s")
