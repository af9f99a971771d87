"""The page in a real Chromium, against a real `perfmode ui` and a real (tiny) trainer."""

from __future__ import annotations

import pytest

from perfmode.base.home import Home
from perfmode.base.modes import TABLE
from tests.browser import CHROMIUM_ARGS
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import read_status, write_config
from tests.uikit import UiServer, kill_trainers_of, need_browser, read_settings

# Generous: the machine is shared, and a trainer takes seconds just to import torch.
SLOW_MS = 180_000


@pytest.fixture(scope="module")
def browser():
    executable = need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def ui(home: Home):
    server = UiServer(home)
    yield server
    server.stop()
    kill_trainers_of(home)


@pytest.fixture
def page(browser, ui: UiServer):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(ui.url)
    pg.wait_for_selector("body[data-ready='1']", timeout=SLOW_MS)
    yield pg
    context.close()
    assert not errors, errors


def test_steer_a_trainer_from_the_page(home: Home, ui: UiServer, page) -> None:
    from playwright.sync_api import expect

    # Multipliers as a GPU profile has them, so the page can show the batch change as well.
    # (A profile in a config is whole: keys left out take ModeProfile's defaults.)
    performance = {"batch_size_multiplier": 2.0, "epochs_multiplier": 1.5, "cpu_share": 1.0}
    write_config(
        home.root / "tiny.yaml",
        training={"total_timesteps": 10_000_000},
        modes={"performance": {**performance, "torch_threads": 1}},
    )
    run_perfmode("set", "quiet", "--home", str(home.root))
    expect(page.locator("#requested-mode")).to_have_text("quiet", timeout=SLOW_MS)
    # Marks this page load: a reload would lose it.
    page.evaluate("window.__sameLoad = true")

    # Start a run from the page, with a config from the home.
    expect(page.locator("#start-config option[value='tiny.yaml']")).to_have_count(
        1, timeout=SLOW_MS
    )
    page.fill("#start-run", "night")
    page.select_option("#start-config", "tiny.yaml")
    page.click("#start")
    run = page.locator(".run[data-run='night']")
    expect(run.locator(".badge")).to_have_text("training", timeout=SLOW_MS)
    pid = read_status(home, "night")["pid"]
    expect(run.locator(".applied .pill")).to_have_text("quiet", timeout=SLOW_MS)
    expect(run.locator(".applied")).to_contain_text(
        "batch 32 · epochs 2 · threads 1 · CPU 50%", timeout=SLOW_MS
    )

    # Performance + Save: the store records the page, the trainer applies it, the page shows it.
    page.click("label[data-mode='performance']")
    expect(page.locator("#save")).to_be_enabled(timeout=SLOW_MS)
    page.click("#save")
    wait_for(
        "settings.json to say performance, by the page",
        lambda: (
            read_settings(home).get("performance_mode") == "performance"
            and read_settings(home).get("changed_by") == "ui"
        ),
        timeout=SLOW_MS / 1000,
    )
    expect(page.locator("#requested-by")).to_contain_text("set by ui", timeout=SLOW_MS)
    expect(run.locator(".applied .pill")).to_have_text("performance", timeout=SLOW_MS)
    expect(run.locator(".applied")).to_contain_text("batch 64 · epochs 3", timeout=SLOW_MS)
    expect(run.locator(".applied")).to_contain_text("CPU 100%")
    expect(page.locator("#chart-count")).to_contain_text("updates", timeout=SLOW_MS)

    # Changes made elsewhere arrive without a reload: the CLI, then a hand edit.
    run_perfmode("set", "quiet", "--home", str(home.root))
    expect(page.locator("#requested-by")).to_contain_text("set by cli", timeout=SLOW_MS)
    home.settings.write_text('{"performance_mode": "performance"}')
    expect(page.locator("#requested-mode")).to_have_text("performance", timeout=SLOW_MS)
    expect(page.locator("#requested-by")).to_contain_text("set by hand edit", timeout=SLOW_MS)
    expect(page.locator("input[name=mode][value=performance]")).to_be_checked(timeout=SLOW_MS)

    # A corrupt file: its problem in words; the trainer falls back to quiet and says so.
    home.settings.write_text('{"performance_mode": "perf')
    expect(page.locator("#settings-problem")).to_be_visible(timeout=SLOW_MS)
    expect(page.locator("#settings-problem")).to_contain_text("not valid JSON", timeout=SLOW_MS)
    expect(run.locator(".notes")).to_contain_text(
        "Trainer sees: settings.json is not valid JSON", timeout=SLOW_MS
    )
    expect(run.locator(".applied .pill")).to_have_text("quiet", timeout=SLOW_MS)

    # Stop from the page (two clicks): SIGTERM, the trainer saves and says it stopped.
    run.locator(".stop").click()
    run.locator(".stop").click()
    expect(run.locator(".badge")).to_have_text("stopped", timeout=SLOW_MS)
    status = read_status(home, "night")
    assert status["pid"] == pid and status["state"] == "stopped"
    assert status["last_checkpoint"]
    expect(run.locator(".notes")).to_contain_text("Trainer exited: ", timeout=SLOW_MS)
    assert page.evaluate("window.__sameLoad") is True


def test_a_trainer_that_fails_to_start_shows_its_error(home: Home, ui: UiServer, page) -> None:
    from playwright.sync_api import expect

    write_config(home.root / "broken.yaml", modes={"quiet": {"cpu_share": 0.0}})
    expect(page.locator("#start-config option[value='broken.yaml']")).to_have_count(
        1, timeout=SLOW_MS
    )
    page.select_option("#start-config", "broken.yaml")
    page.click("#start")
    run = page.locator(".run[data-run='default']")
    expect(run.locator(".badge")).to_have_text("failed", timeout=SLOW_MS)
    expect(run.locator(".notes")).to_contain_text(
        "Trainer exited with status 2: Error: ", timeout=SLOW_MS
    )
    expect(run.locator(".notes")).to_contain_text("modes.quiet.cpu_share is 0.0", timeout=SLOW_MS)
    # Starting the same run again while nothing runs is allowed; a bad name is refused.
    page.fill("#start-run", "../up")
    page.evaluate("document.getElementById('start-run').removeAttribute('pattern')")
    page.click("#start")
    expect(page.locator("#start-msg")).to_contain_text("is not allowed", timeout=SLOW_MS)
    assert not (home.root / "up").exists()


def test_the_pages_mode_colours_come_from_the_mode_table(browser, ui: UiServer) -> None:
    names = list(TABLE)
    read = """(names) => names.map((n) => [
        getComputedStyle(document.documentElement).getPropertyValue(`--mode-${n}`).trim(),
        document.querySelector(`label[data-mode='${n}']`).style.getPropertyValue('--mode-color'),
    ])"""
    shown = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        try:
            pg = context.new_page()
            pg.goto(ui.url)
            pg.wait_for_selector("body[data-ready='1']", timeout=SLOW_MS)
            shown[scheme] = dict(zip(names, pg.evaluate(read, names), strict=True))
            if scheme == "light":  # the system switches theme while the page is open
                pg.emulate_media(color_scheme="dark")
                pg.wait_for_function(
                    "(c) => getComputedStyle(document.documentElement)"
                    ".getPropertyValue('--mode-quiet').trim() !== c",
                    arg=TABLE["quiet"].colour,
                    timeout=SLOW_MS,
                )
                shown["switched"] = dict(zip(names, pg.evaluate(read, names), strict=True))
        finally:
            context.close()
    assert shown["switched"] == shown["dark"]
    for name, spec in TABLE.items():
        # The variable, and the mode's choice drawn in it (app.css names no mode).
        assert shown["light"][name] == [spec.colour, spec.colour], name
        # The dark theme lightens it, so the pills' dark text stays readable.
        dark = shown["dark"][name][0]
        assert sum(_channels(dark)) > sum(_channels(spec.colour)), (name, dark)


def _channels(hex_colour: str) -> list[int]:
    return [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]


def test_the_sweeps_card_shows_a_journal_and_a_database_study(
    home: Home, page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import expect

    from tests.test_ui_sweeps import _study, database_snapshot

    _study(home, "lr")
    database_snapshot(home)
    card = page.locator("#sweeps-card")
    expect(card).to_be_visible(timeout=SLOW_MS)
    lr, pg = card.locator(".sweep[data-sweep='lr']"), card.locator(".sweep[data-sweep='pg']")
    expect(lr.locator("tbody tr")).to_have_count(4, timeout=SLOW_MS)
    expect(lr.locator(".as-of")).to_have_count(0)
    expect(pg.locator("tbody tr")).to_have_count(1)
    expect(pg).to_contain_text("best so far: trial 4, 7.31% (sweep-pg-4)")
    expect(pg).to_contain_text("other-box")
    expect(pg.locator(".as-of")).to_contain_text("postgresql://me:***@db/perfmode: as of ")
    card.screenshot(path=str(tmp_path_factory.mktemp("shots") / "sweeps-card.png"))
