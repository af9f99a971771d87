"""The page tells a stopped trainer from a running and a dead one, and a waiting run from a
training one, as `perfmode status` does."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perfmode.base.clock import format_time, utc_now
from perfmode.base.home import Home
from tests.browser import CHROMIUM_ARGS
from tests.uikit import UiServer, need_browser

SLOW_MS = 180_000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP: POSIX only")


def _write_status(home: Home, run: str, pid: int, **fields: object) -> None:
    """A fresh status of a trainer of ``run`` in process ``pid``, as a trainer writes it."""
    home.run_dir(run).mkdir(parents=True)
    status = {
        "pid": pid,
        "heartbeat": format_time(utc_now()),
        "run": run,
        "state": "training",
        "applied_mode": "performance",
        "timesteps": 2048,
        "total_timesteps": 10_000,
        **fields,
    }
    home.status_file(run).write_text(json.dumps(status))


@contextlib.contextmanager
def _page_beside_a_process(
    home: Home, stop_it: bool = False
) -> Iterator[tuple[Any, int, Callable[[], None]]]:
    """A live process standing in for a trainer (stopped, as SIGSTOP leaves one, if
    ``stop_it``) and a Chromium page: yields (page, the process's pid, a function that
    starts the home's server and opens it), so the test writes the status first. Page
    errors fail the test."""
    executable = need_browser()
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = None
    try:
        if stop_it:
            proc.send_signal(signal.SIGSTOP)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def open_page() -> None:
                nonlocal server
                server = UiServer(home)
                page.goto(server.url)

            yield page, proc.pid, open_page
            browser.close()
            assert not errors, errors
    finally:
        if server is not None:
            server.stop()
        proc.kill()
        proc.wait(60)


def test_a_stopped_trainer_shows_as_not_responding(home: Home) -> None:
    from playwright.sync_api import expect

    with _page_beside_a_process(home, stop_it=True) as (page, pid, open_home):
        _write_status(home, "night", pid, applied_mode="quiet")
        open_home()
        run = page.locator(".run[data-run='night']")
        expect(run.locator(".badge")).to_have_text("not responding", timeout=SLOW_MS)
        expect(run.locator(".notes")).to_contain_text(
            f"the process is stopped (SIGSTOP or Ctrl-Z); `kill -CONT {pid}`",
            timeout=SLOW_MS,
        )


def test_the_homes_other_runs_are_counted_apart_from_other_programs(home: Home) -> None:
    from playwright.sync_api import expect

    with _page_beside_a_process(home) as (page, pid, open_home):
        # Other programs' CPU as the trainer reports it: 1.5 cores, 1.0 of them another run.
        _write_status(home, "seed1", pid, fps=4000.0, foreign_cpu=1.5, other_trainers_cpu=1.0)
        open_home()
        facts = page.locator(".run[data-run='seed1'] .run-facts")
        expect(facts).to_contain_text("other programs0.5 cores", timeout=SLOW_MS)
        expect(facts).to_contain_text("other runs1.0 cores", timeout=SLOW_MS)


def test_a_waiting_run_shows_no_cpu_not_its_profiles_share(home: Home) -> None:
    from playwright.sync_api import expect

    with _page_beside_a_process(home) as (page, pid, open_home):
        # The profile's 100% beside the waiting state, as an earlier trainer wrote it.
        reason = "waiting: 1 core free serves 1 run; 2nd in line"
        _write_status(
            home,
            "s1",
            pid,
            state="waiting",
            batch_size=128,
            n_epochs=4,
            torch_threads=1,
            cpu_share=1.0,
            applied_at=format_time(utc_now()),
            budget={"state": "waiting", "cpu_share": 0.0, "reason": reason},
        )
        open_home()
        applied = page.locator(".run[data-run='s1'] .applied")
        expect(applied).to_contain_text(
            "batch 128 · epochs 4 · threads 1 · CPU 0% (waiting)", timeout=SLOW_MS
        )
