"""Modes are data: a row added to the mode table (plus its YAML profile) is a working mode."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import perfmode
from perfmode.base.modes import TABLE, Mode, hold_modes, profiles
from perfmode.config.schema import Config, default_config_text
from perfmode.config.yamlfile import read_yaml_file

# Runs in a fresh interpreter: a row is added to the table before anything else of perfmode
# is imported, which is what adding it to the source does.
ADD_ECO = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timezone
    from pathlib import Path
    from perfmode.base import modes
    modes.TABLE["eco"] = modes.ModeSpec(
        help="Between the two: a couple of threads, most of the time.",
        profile="eco",
        defaults={"torch_threads": 2, "cpu_share": 0.7},
        hold_rank=1.5,
        heat_fallback="quiet",
        colour="#16a34a",
    )
    from typer.testing import CliRunner
    from perfmode.base.home import Home
    from perfmode.cli import app
    from perfmode.config.schema import load_config
    from perfmode.governor.governor import Governor
    from perfmode.settings.holds import active_holds, add_hold, winning_hold
    from perfmode.settings.store import SettingsStore
    from perfmode.web.launcher import Launcher
    from perfmode.web.snapshot import build_snapshot

    home, cfg = Path(sys.argv[1]), Path(sys.argv[2])
    out = {}
    cli = CliRunner().invoke(app, ["set", "ECO", "--home", str(home)])
    out["set"] = [cli.exit_code, cli.output.strip()]
    store = SettingsStore(Home(home).settings)
    out["requested"] = store.read().mode.value
    config = load_config(cfg)
    gov = Governor(store, config)
    k = gov.knobs
    out["knobs"] = [k.mode.value, k.batch_size, k.n_epochs, k.torch_threads, k.cpu_share]
    gov.gpu.hot = True  # what the temperature guard sets above eco's limit
    out["hot"] = gov._wanted().value
    later = datetime(2999, 1, 1, tzinfo=timezone.utc)
    add_hold(store, "performance", reason="game", until=later)
    add_hold(store, "eco", reason="render", until=later)
    holds = active_holds(store.read().data)
    out["holds"] = sorted(h.mode.value for h in holds)
    out["winner"] = winning_hold(holds).mode.value
    out["set_help"] = CliRunner().invoke(app, ["set", "--help"]).output
    out["page_modes"] = build_snapshot(Home(home), Launcher(Home(home)))["modes"]
    print(json.dumps(out))
    """
)


def test_a_mode_added_to_the_table_is_settable_holdable_and_runs_its_own_profile(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "eco.yaml"
    cfg.write_text("modes:\n  eco:\n    torch_threads: 3\n    epochs_multiplier: 2.0\n")
    done = subprocess.run(
        [sys.executable, "-c", ADD_ECO, str(tmp_path / "home"), str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["set"][0] == 0 and out["set"][1].startswith("Mode: eco (set by cli")
    assert out["requested"] == "eco"
    # Its profile, not quiet's: 3 threads from the YAML, 70% from the row, epochs 4 × 2.
    assert out["knobs"] == ["eco", 128, 8, 3, 0.7]
    assert out["hot"] == "quiet"
    assert out["holds"] == ["eco", "performance"]
    assert out["winner"] == "eco"  # rank 1.5: less demanding than performance
    # The help's words, without the box it is drawn in (its lines wrap wherever they fit).
    assert "eco (between the two" in " ".join(out["set_help"].replace("│", " ").split())
    # The page lists it with its help and draws it in its own colour (app.js sets --mode-eco).
    assert out["page_modes"][-1] == {
        "value": "eco",
        "help": "Between the two: a couple of threads, most of the time.",
        "colour": "#16a34a",
    }


def test_without_a_row_a_mode_is_refused_not_run_as_quiet() -> None:
    try:
        Mode("eco")
    except ValueError as e:
        assert "eco" in str(e)
    else:
        raise AssertionError("an unknown mode was accepted")


def test_the_table_and_the_default_configs_name_the_same_profiles() -> None:
    path = Path(__file__).parent.parent / "configs" / "train_config.yaml"
    assert path.read_text("utf-8") == default_config_text()
    doc = read_yaml_file(path).data
    assert set(doc["modes"]) == set(profiles()) == set(Config().modes.__dataclass_fields__)
    held = hold_modes()
    assert held[0] is Mode.PAUSED and Mode.AUTO not in held  # least demanding wins; auto decides
    assert held.index(Mode.QUIET) < held.index(Mode.PERFORMANCE)
    assert {m.value for m in Mode} == set(TABLE)


def test_every_mode_has_a_colour_the_page_and_the_pictures_can_use() -> None:
    # The page sets it as a CSS variable and lightens it for its dark theme: #rrggbb only.
    for name, spec in TABLE.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", spec.colour), name
    assert len({spec.colour for spec in TABLE.values()}) == len(TABLE)
    # The stylesheet names no mode: every colour on the page comes from the table.
    css = (Path(perfmode.__file__).parent / "web" / "static" / "app.css").read_text("utf-8")
    assert not re.findall(rf"--mode-({'|'.join(TABLE)})\b", css)
