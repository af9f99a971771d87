"""Who may talk to `perfmode ui`: loopback Host only, the page's own Origin for changes,
no file outside the package's static folder, non-loopback only with a flag and a token."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading

import pytest

from perfmode.base.home import Home
from perfmode.errors import UsageError
from perfmode.web.security import EXPOSE_FLAG, Guard, check_bind_host, host_name, is_loopback
from tests.conftest import run_perfmode, wait_for
from tests.uikit import UiServer, read_settings


@pytest.fixture
def ui(home: Home):
    server = UiServer(home)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("[::1]", True),
        ("LOCALHOST.", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("192.168.1.10", False),
        ("0.0.0.0", False),
        ("", False),
    ],
)
def test_loopback_names(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:3200", "127.0.0.1"), ("[::1]:3200", "[::1]"), ("localhost", "localhost")],
)
def test_host_header_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_guard_rules() -> None:
    guard = Guard()
    page = {"host": "127.0.0.1:3200"}
    change = {**page, "origin": "http://127.0.0.1:3200", "content-type": "application/json"}
    assert guard.check("GET", "/", page) is None
    assert guard.check("POST", "/api/mode", change) is None
    assert guard.check("GET", "/", {"host": "evil.example:3200"}).status == 403
    # Same host, another port is another origin (another local app's page).
    assert guard.check("POST", "/", {**change, "origin": "http://127.0.0.1:8888"}).status == 403
    assert guard.check("POST", "/", {**change, "origin": "null"}).status == 403
    # A form post (no JSON) is refused even from the right origin.
    assert guard.check("POST", "/", {**change, "content-type": "text/plain"}).status == 415


def test_non_loopback_host_needs_the_flag(home: Home) -> None:
    proc = run_perfmode("ui", "--host", "0.0.0.0", "--port", "0", "--home", str(home.root))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and EXPOSE_FLAG in lines[0], proc.stderr
    with pytest.raises(UsageError):
        check_bind_host("192.168.1.10", exposed=False)
    check_bind_host("192.168.1.10", exposed=True)
    check_bind_host("::1", exposed=False)


def test_port_in_use_is_one_line_and_exit_1(home: Home) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_perfmode("ui", "--port", str(port), "--home", str(home.root))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is in use (is another perfmode ui running?); "
        "stop that program or pick another port with --port"
    ]


def test_foreign_host_and_origin_are_refused(ui: UiServer, home: Home) -> None:
    status, body = ui.request("GET", "/api/state", headers={"Host": f"evil.example:{ui.port}"})
    assert status == 403 and "loopback" in body["error"]
    assert ui.request("GET", "/", headers={"Host": f"evil.example:{ui.port}"})[0] == 403
    status, body = ui.request("GET", "/api/state", headers={"Host": f"localhost:{ui.port}"})
    assert status == 200 and body["status"]["requested_mode"] == "quiet"

    # A change from another origin, or with none (not the page), changes nothing.
    for origin in ("http://evil.example", f"http://127.0.0.1:{ui.port + 1}", None):
        headers = {"Content-Type": "application/json"}
        if origin:
            headers["Origin"] = origin
        status, body = ui.request("POST", "/api/mode", {"mode": "performance"}, headers)
        assert status == 403, body
    assert ui.post("/api/mode", {"mode": "performance"}, Host=f"evil.example:{ui.port}")[0] == 403
    assert not home.settings.exists()

    # The page's own origin works, and is recorded as the page.
    status, body = ui.post("/api/mode", {"mode": "performance"})
    assert status == 200 and body["changed_by"] == "ui"
    assert read_settings(home)["performance_mode"] == "performance"
    assert read_settings(home)["changed_by"] == "ui"


def test_bad_input_to_the_controls_is_refused_with_a_line(ui: UiServer, home: Home) -> None:
    status, body = ui.post("/api/mode", {"mode": "turbo"})
    assert status == 400 and "unknown mode 'turbo'; valid modes: quiet" in body["error"]
    assert ui.post("/api/mode", b"not json")[0] == 400
    for run in ("../escape", "a b", "-rf", ""):
        status, body = ui.post("/api/runs/start", {"run": run, "config": "built-in default"})
        assert status == 400 and "not allowed" in body["error"], body
    for config in ("/etc/passwd", "../x.yaml", "settings.json"):
        status, body = ui.post("/api/runs/start", {"run": "r", "config": config})
        assert status == 400 and "not one of this home's configs" in body["error"], body
    status, body = ui.post("/api/runs/stop", {"run": "nothing-here"})
    assert status == 409 and "not training" in body["error"]
    assert not (home.root / "runs").exists()
    assert not home.settings.exists()


def test_serves_no_file_but_its_own(ui: UiServer, home: Home) -> None:
    home.settings.write_text('{"performance_mode": "quiet", "secret": "s3cret"}')
    for path in (
        "/static/../settings.json",
        "/static/..%2fsettings.json",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static//etc/passwd",
        "/settings.json",
        "/static/",
    ):
        status, body = ui.request("GET", path)
        assert status == 404, (path, status)
        assert "s3cret" not in json.dumps(body) and "root:" not in json.dumps(body)
    status, body = ui.request("GET", "/static/vendor/uplot/LICENSE")
    assert status == 200 and "MIT" in body


def test_exposed_server_requires_the_token(home: Home) -> None:
    # The guard an exposed `perfmode ui` runs, served for real but on loopback only.
    import uvicorn

    from perfmode.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(home, Guard("tok")), log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        wait_for("the server", lambda: server.started, timeout=60)

        def get(path: str, **headers: str) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers={"Host": f"trainer.lan:{port}", **headers})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return resp

        assert get("/api/state").status == 401
        assert get("/api/state", Authorization="Bearer wrong").status == 401
        assert get("/api/state", Authorization="Bearer tok").status == 200
        # The printed URL carries the token once: it becomes a cookie, the URL drops it.
        first = get("/?token=tok")
        assert first.status == 303 and first.getheader("location") == "/"
        cookie = first.getheader("set-cookie")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert get("/api/state", Cookie=cookie.split(";")[0]).status == 200
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def test_missing_home_shows_on_the_page_not_a_traceback(tmp_path) -> None:
    server = UiServer(Home(tmp_path / "not-yet"))
    try:
        status, body = server.request("GET", "/api/state")
        assert status == 200
        assert "does not exist yet" in body["problem"]
    finally:
        server.stop()
    assert "Traceback" not in server.output
