"""What `perfmode ui` costs and how quick it is (targets: < 2% of one core, page load < 300 ms).

With a real trainer running (default config, quiet, 5M-step target), a stored timetable
(no daemon) and the page open in Chromium:
- page load: navigation start to the browser's load event, and to the first state drawn
  (the page's own `perfmode-first-state` mark), fresh browser context each time;
- a hand edit of settings.json until the page shows it;
- the `perfmode ui` process's CPU time over a window, as a share of one core, with the
  page open (the mode switched twice in the window) and with no page open.

Run: .venv/bin/python benchmarks/bench_ui.py [--seconds 60] [--loads 10] [--config CFG]
       [--screenshot docs/ui.png]
Needs Chromium (apt-get install -y chromium, or PERFMODE_CHROMIUM=/path).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _trainer import Trainer, percentile, set_mode, start_quiet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import CHROMIUM_ARGS, chromium_path

PERFMODE = [sys.executable, "-m", "perfmode"]


class Ui:
    def __init__(self, home: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*PERFMODE, "ui", "--home", str(home), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.lines:
                if m := re.search(r"(http://\S+/)", line):
                    self.url = m.group(1)
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("perfmode ui exited:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise TimeoutError("perfmode ui printed no address")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def cpu_share(self, seconds: float, during=None) -> float:
        """CPU seconds per wall second of the ui process over ``seconds``."""
        p = psutil.Process(self.proc.pid)
        t0, c0 = time.monotonic(), sum(p.cpu_times()[:2])
        if during is not None:
            during()
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
        return (sum(p.cpu_times()[:2]) - c0) / (time.monotonic() - t0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def page_loads(browser, url: str, n: int) -> tuple[list[float], list[float]]:
    load, first = [], []
    for _ in range(n):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        mark = page.evaluate("performance.getEntriesByName('perfmode-first-state')[0].startTime")
        load.append(nav / 1000)
        first.append(mark / 1000)
        ctx.close()
    return load, first


def edit_to_page(page, settings: Path, n: int) -> list[float]:
    times = []
    for i in range(n):
        mode = ("performance", "quiet")[i % 2]
        t0 = time.perf_counter()
        # As an editor would: change the value, keep the rest (the timetable among it).
        data = json.loads(settings.read_text())
        data["performance_mode"] = mode
        settings.write_text(json.dumps(data, indent=2))
        page.wait_for_function(
            f"document.getElementById('requested-mode').textContent === '{mode}'",
            polling="raf",
            timeout=60_000,
        )
        times.append(time.perf_counter() - t0)
        time.sleep(0.5)
    return times


def start_trainer(home: Path, config: Path | None) -> Trainer:
    subprocess.run(
        [
            *PERFMODE,
            "schedule",
            "--night",
            "18:00",
            "--day",
            "08:00",
            "--save-only",
            "--home",
            home,
        ],
        check=True,
        capture_output=True,
    )
    return start_quiet(home, *(["--config", str(config)] if config else []))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60, help="CPU window, each case")
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--screenshot", type=Path, help="save the page as a PNG at the end")
    parser.add_argument("--config", type=Path, help="the trainer's config (default: built in)")
    args = parser.parse_args()
    chromium = chromium_path()
    if not chromium:
        sys.exit("no Chromium: apt-get install -y chromium (or set PERFMODE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        trainer = start_trainer(home, args.config)
        ui = Ui(home)
        try:
            idle = ui.cpu_share(min(args.seconds, 30))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                load, first = page_loads(browser, ui.url, args.loads)
                # wait_for_function evaluates a string in the page, which its CSP forbids.
                page = browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
                page.goto(ui.url)
                page.wait_for_selector("body[data-ready='1']")

                def switches() -> None:
                    w = args.seconds
                    threading.Timer(w / 3, set_mode, (home, "performance")).start()
                    threading.Timer(2 * w / 3, set_mode, (home, "quiet")).start()

                busy = ui.cpu_share(args.seconds, during=switches)
                if args.screenshot:
                    time.sleep(3)
                    # Hover the performance stretch: the readout shows what the cursor is on.
                    over = page.locator("#chart-fps .u-over")
                    box = over.bounding_box()
                    over.hover(position={"x": box["width"] * 0.55, "y": box["height"] / 2})
                    page.screenshot(path=str(args.screenshot), full_page=True)
                edits = edit_to_page(page, home / "settings.json", 10)
                browser.close()
        finally:
            ui.stop()
            trainer.stop()

    def row(name: str, values: list[float]) -> None:
        cells = [statistics.median(values), percentile(values, 0.95), max(values)]
        print(f"{name:<52}" + "".join(f"{v * 1000:>8.0f} ms" for v in cells))

    print(f"{'what':<52}{'median':>11}{'p95':>11}{'max':>11}")
    row(f"page load: navigation to load event ({args.loads})", load)
    row(f"page load: navigation to first state drawn ({args.loads})", first)
    row("hand edit of settings.json until the page shows it", edits)
    print(
        f"perfmode ui CPU, trainer running, page open, 2 switches ({args.seconds:.0f} s): "
        f"{busy:.2%} of one core"
    )
    print(
        f"perfmode ui CPU, trainer running, no page open ({min(args.seconds, 30):.0f} s): "
        f"{idle:.2%} of one core"
    )


if __name__ == "__main__":
    main()
