"""The page's server against what a home or a request can hold: planted links and FIFOs,
huge metrics, deep or endless bodies. A real `perfmode ui` process; nothing may hang it."""

from __future__ import annotations

import json
import os
import select
import socket
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


class RawEvents:
    """The page's event stream over HTTP/1.0 (no chunks): what has arrived, and nothing more,
    so that a test can tell whether an event was sent yet."""

    def __init__(self, server: UiServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        self.sock.sendall(f"GET /api/events HTTP/1.0\r\nHost: {server.hostport}\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head

    def _recv(self) -> None:
        part = self.sock.recv(1 << 20)
        assert part, "the stream ended"
        self.buf += part

    def next(self) -> tuple[str, bytes]:
        """The next event's name and its data line (bytes: one may be megabytes); a retry
        or a ping is no event."""
        while True:
            while b"\n\n" not in self.buf:
                self._recv()
            raw, self.buf = self.buf.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in raw.split(b"\n") if b": " in line)
            if b"event" in fields:
                return fields[b"event"].decode(), fields.get(b"data", b"")

    def arrived(self) -> bytes:
        """Everything sent so far and not yet taken by ``next``, without waiting."""
        while select.select([self.sock], [], [], 0)[0]:
            self._recv()
        return self.buf

    def close(self) -> None:
        self.sock.close()


def _write_metrics(path: Path, rows: int) -> None:
    row = "{},2026-12-01T00:00:00Z,{},1000.0,1.0,0.5\n"
    with open(path, "w") as f:  # the mode flips every row
        f.write("timesteps,time,mode,fps,cpu_cores,ep_rew_mean\n")
        for block in range(0, rows, 10_000):
            f.write(
                "".join(
                    row.format(i, "quiet" if i % 2 else "performance")
                    for i in range(block, min(rows, block + 10_000))
                )
            )


def test_a_huge_metrics_file_gives_a_bounded_first_event_and_blocks_no_request(
    served, tmp_path: Path
) -> None:
    """The server reads a metrics.csv (its last 8 MiB, about a second of parsing) off its
    event loop: the page's files are served meanwhile, before the file's first event is sent."""
    server, home = served
    rows = 300_000  # about 15 MB: more than the 8 MiB tail read
    home.runs_dir.mkdir(exist_ok=True)
    stream = RawEvents(server)
    try:
        assert stream.next()[0] == "state"
        for attempt in range(3):
            run = f"big{attempt}"
            # The run appears whole (status and metrics at once), so the tick that finds it
            # sends its state first and then reads its metrics.
            staged = tmp_path / run
            staged.mkdir()
            (staged / "status.json").write_text(json.dumps({"run": run, "state": "stopped"}))
            _write_metrics(staged / "metrics.csv", rows)
            staged.rename(home.run_dir(run))
            while True:
                event, data = stream.next()
                if event == "metrics" and json.loads(data)["run"] == run:
                    break  # read before its state was sent: a rename between the two; again
                if event == "state" and run in [
                    r["run"] for r in json.loads(data)["status"]["runs"]
                ]:
                    break
            if event == "state":
                break
        else:
            raise AssertionError("the metrics came before the state three times")
        # While the server reads the file, other requests are answered ...
        assert _quick_get(server, "/static/app.js") == 200
        assert _quick_get(server, "/") == 200
        # ... before the read is done: its event has not been sent yet.
        sent = b'"run":"%s"' % run.encode() in stream.arrived()
        assert not sent, "the page's files were served only once the metrics had been read"
        # The state waits for that read (it is the state after it), and no longer.
        assert server.request("GET", "/api/state")[0] == 200
        while True:
            event, line = stream.next()
            if event == "metrics" and json.loads(line)["run"] == run:
                break
    finally:
        stream.close()
    data = json.loads(line)
    assert len(line) < 2_000_000, len(line)
    assert len(data["cols"]["steps"]) <= 2 * MAX_POINTS + 2
    assert data["cols"]["steps"][-1] == rows - 1  # the newest rows are there
    print(f"first metrics event: {len(line):,} bytes")
