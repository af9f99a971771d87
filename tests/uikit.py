"""Shared pieces for the web page's tests: a real ``perfmode ui`` process and a real Chromium."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from perfmode.base.home import Home
from tests.browser import chromium_path

NO_BROWSER = (
    "no Chromium for the browser tests: apt-get install -y chromium "
    "(or point PERFMODE_CHROMIUM at a Chromium or Chrome executable)"
)


class UiServer:
    """``perfmode ui --port 0`` for a home; its address is read from the line it prints."""

    def __init__(
        self,
        home: Home,
        *args: str,
        env: dict[str, str] | None = None,
        own_group: bool = False,
    ) -> None:
        """``own_group``: its own process group, as a shell job is, for a terminal's Ctrl-C."""
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perfmode",
                "ui",
                "--home",
                str(home.root),
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=own_group,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = [m for line in self.lines if (m := re.search(r"http://([^/\s]+)/", line))]
            if found:
                self.hostport = found[0].group(1)
                self.port = int(self.hostport.rsplit(":", 1)[1])
                self.url = f"http://{self.hostport}/"
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader take the last lines
                raise AssertionError(f"perfmode ui exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"perfmode ui printed no address:\n{self.output}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A plain HTTP request; ``headers`` may replace Host. Returns (status, JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = (
            json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        )
        try:
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw

    def post(self, path: str, body: Any, **headers: str) -> tuple[int, Any]:
        """A change as the page sends it: JSON, with the page's own Origin."""
        base = {"Origin": f"http://{self.hostport}", "Content-Type": "application/json"}
        return self.request("POST", path, body, {**base, **headers})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def trainers_of(home: Home) -> list[tuple[str, Any]]:
    """(run, process) of every ``perfmode train`` of ``home`` running now, found by argv."""
    import psutil

    from perfmode.web.launcher import trainer_target

    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            target = trainer_target(p.info["cmdline"] or [], p.info["cwd"] or "/", None)
        except psutil.Error:
            continue
        if target is not None and target[0] == home.root.resolve():
            found.append((target[1], p))
    return found


def kill_trainers_of(home: Home) -> None:
    """Trainers a test started from the page run in their own session: end them if it failed."""
    import psutil

    mine = [p for _, p in trainers_of(home)]
    for p in mine:
        p.kill()
    psutil.wait_procs(mine, timeout=60)


def need_browser() -> str:
    """The Chromium to drive; skips (or fails, where CI requires a browser) without one."""
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("PERFMODE_REQUIRE_BROWSER") == "1":
            pytest.fail(NO_BROWSER + "; PERFMODE_REQUIRE_BROWSER=1 makes this a failure")
        pytest.skip(NO_BROWSER)
    return path


def read_settings(home: Home) -> dict[str, Any]:
    try:
        data = json.loads(home.settings.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
