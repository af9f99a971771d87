"""The page tells a stopped trainer from a running and a dead one, as `perfmode status` does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from perfmode.home import Home
from perfmode.settings import format_time, utc_now
from tests.uikit import CHROMIUM_ARGS, UiServer, need_browser

SLOW_MS = 180_000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP: POSIX only")


def test_a_stopped_trainer_shows_as_not_responding(home: Home) -> None:
    executable = need_browser()
    from playwright.sync_api import expect, sync_playwright

    # A live process, stopped, that wrote a fresh status: what SIGSTOP leaves of a trainer.
    stopped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = None
    try:
        stopped.send_signal(signal.SIGSTOP)
        home.run_dir("night").mkdir(parents=True)
        status = {
            "pid": stopped.pid,
            "heartbeat": format_time(utc_now()),
            "run": "night",
            "state": "training",
            "applied_mode": "quiet",
            "timesteps": 2048,
            "total_timesteps": 10_000,
        }
        home.status_file("night").write_text(json.dumps(status))
        server = UiServer(home)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            run = page.locator(".run[data-run='night']")
            expect(run.locator(".badge")).to_have_text("not responding", timeout=SLOW_MS)
            expect(run.locator(".notes")).to_contain_text(
                f"the process is stopped (SIGSTOP or Ctrl-Z); `kill -CONT {stopped.pid}`",
                timeout=SLOW_MS,
            )
            browser.close()
            assert not errors, errors
    finally:
        if server is not None:
            server.stop()
        stopped.kill()
        stopped.wait(60)


def test_the_homes_other_runs_are_counted_apart_from_other_programs(home: Home) -> None:
    executable = need_browser()
    from playwright.sync_api import expect, sync_playwright

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = None
    try:
        home.run_dir("seed1").mkdir(parents=True)
        status = {
            "pid": alive.pid,
            "heartbeat": format_time(utc_now()),
            "run": "seed1",
            "state": "training",
            "applied_mode": "performance",
            "timesteps": 2048,
            "total_timesteps": 10_000,
            "fps": 4000.0,
            "foreign_cpu": 1.5,  # of which another run of this home: 1.0
            "other_trainers_cpu": 1.0,
        }
        home.status_file("seed1").write_text(json.dumps(status))
        server = UiServer(home)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.url)
            facts = page.locator(".run[data-run='seed1'] .run-facts")
            expect(facts).to_contain_text("other programs0.5 cores", timeout=SLOW_MS)
            expect(facts).to_contain_text("other runs1.0 cores", timeout=SLOW_MS)
            browser.close()
    finally:
        if server is not None:
            server.stop()
        alive.kill()
        alive.wait(60)
