"""``perfmode config show`` / ``init``, and the config lines ``perfmode train`` logs at start."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from perfmode.base.home import Home
from perfmode.cli import app
from perfmode.config.schema import Config, ModeProfile, default_config_text, load_config
from perfmode.config.sections import flatten, to_mapping
from perfmode.config.view import format_value
from tests.trainkit import log_text, write_config

DEFAULTS = flatten(to_mapping(Config()))
TUNED = """\
# two knobs of performance mode, and fewer envs
modes:
  performance:
    batch_size_multiplier: 3.0
    epochs_multiplier: 1.5
training:
  n_envs: 2
"""
WRITTEN = {  # key: line in TUNED
    "modes.performance.batch_size_multiplier": 4,
    "modes.performance.epochs_multiplier": 5,
    "training.n_envs": 7,
}


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def tuned(tmp_path: Path) -> Path:
    path = tmp_path / "tuned.yaml"
    path.write_text(TUNED)
    return path


def test_show_gives_every_value_with_its_origin(tuned: Path) -> None:
    result = invoke("config", "show", "--config", str(tuned))
    assert result.exit_code == 0, result.output
    effective = flatten(to_mapping(load_config(tuned)))
    rows = {}
    for line in result.stdout.splitlines():
        origin, rest = line.split(maxsplit=1)
        key, value = rest.split(" = ", 1)
        rows[key] = (origin, value)
    assert list(rows) == list(effective)
    for key, (origin, value) in rows.items():
        want_origin = f"{tuned}:{WRITTEN[key]}" if key in WRITTEN else "default"
        assert origin == want_origin, key
        shown = format_value(effective[key])
        if effective[key] != DEFAULTS[key]:
            shown += f"  (default: {format_value(DEFAULTS[key])})"
        assert value == shown, key
    # the case: performance keeps its own threads and CPU share
    assert rows["modes.performance.cpu_share"] == (
        "default",
        format_value(DEFAULTS["modes.performance.cpu_share"]),
    )
    assert rows["training.n_envs"][1] == f"2  (default: {DEFAULTS['training.n_envs']})"


def test_show_json_has_the_effective_config_and_origins(tuned: Path) -> None:
    result = invoke("config", "show", "--config", str(tuned), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["file"] == str(tuned)
    assert report["config"] == json.loads(json.dumps(to_mapping(load_config(tuned))))
    values = report["values"]
    assert set(values) == set(DEFAULTS)
    assert values["training.n_envs"] == {
        "value": 2,
        "default": DEFAULTS["training.n_envs"],
        "origin": f"{tuned}:7",
    }
    assert values["modes.performance.torch_threads"]["origin"] == "default"


def test_show_without_a_file_is_the_embedded_default() -> None:
    report = json.loads(invoke("config", "show", "--json").stdout)
    assert report["file"] is None
    assert report["config"] == json.loads(json.dumps(to_mapping(Config())))
    assert {v["origin"] for v in report["values"].values()} == {"default"}


def test_show_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("modes:\n  performance:\n    cpu_shar: 0.9\n")
    result = invoke("config", "show", "--config", str(path))
    assert result.exit_code == 2
    keys = ", ".join(f.name for f in dataclasses.fields(ModeProfile))
    assert result.stderr == (
        f"Error: {path}:3: unknown key modes.performance.cpu_shar; valid keys: {keys}\n"
    )
    assert result.stdout == ""


def test_init_writes_the_documented_default_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "init")
    assert result.exit_code == 0, result.output
    written = tmp_path / "train_config.yaml"
    assert written.read_text(encoding="utf-8") == default_config_text()
    assert load_config(written) == Config()
    assert "perfmode train --config train_config.yaml" in result.stdout

    written.write_text("training:\n  seed: 7\n")  # the user's edits
    again = invoke("config", "init", str(written))
    assert again.exit_code == 2
    assert again.stderr.startswith(f"Error: {written} already exists")
    assert written.read_text() == "training:\n  seed: 7\n"


def test_init_into_a_folder_and_into_a_missing_one(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    assert invoke("config", "init", str(folder)).exit_code == 0
    assert (folder / "train_config.yaml").read_text(encoding="utf-8") == default_config_text()
    missing = tmp_path / "nope" / "my.yaml"
    result = invoke("config", "init", str(missing))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert not missing.parent.exists()


def test_train_logs_its_config_and_what_differs_once(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path / "tiny.yaml",
        training={"total_timesteps": 128},
        modes={"performance": {"epochs_multiplier": 2.0}},
    )
    written = yaml.safe_load(path.read_text())
    lines = path.read_text().splitlines()
    monkeypatch.chdir(tmp_path)
    result = invoke(
        "train", "--config", "tiny.yaml", "--seed", "3", "--home", str(home.root), "--run", "r"
    )
    assert result.exit_code == 0, result.output
    log = log_text(home, "r")
    assert log.count("📄 Config: ") == 1
    header = next(line for line in log.splitlines() if "📄 Config: " in line)
    assert f"📄 Config: {path.resolve()}; " in header
    changed = flatten(written)
    changed["training.seed"] = 3
    changed = {k: v for k, v in changed.items() if v != DEFAULTS[k]}
    assert f"{len(changed)} values differ from the default" in header
    for key, value in changed.items():
        origin = "--seed" if key == "training.seed" else None
        if origin is None:  # the line yaml.safe_dump put the key on
            leaf = key.rsplit(".", 1)[1]
            origin = next(
                f"line {i}" for i, t in enumerate(lines, 1) if t.strip().startswith(f"{leaf}:")
            )
        want = (
            f"   {key} = {format_value(value)}  (default {format_value(DEFAULTS[key])}; {origin})"
        )
        assert want in log, want
    assert "modes.performance.cpu_share" not in log  # unchanged values are not listed


def test_train_without_a_config_says_so(home: Home, monkeypatch) -> None:
    # The embedded default lowers the trainer's priority (training.nice); in-process that
    # would be the pytest process's, for good: record the call instead.
    niceness = [0]

    def nice(increment: int) -> int:
        niceness[0] += increment
        return niceness[0]

    monkeypatch.setattr(os, "nice", nice)
    result = invoke("train", "--timesteps", "1", "--home", str(home.root))
    assert result.exit_code == 0, result.stderr
    assert niceness == [Config().training.nice]  # lowered to it once, whoever asked again
    log = log_text(home)
    assert "📄 Config: the embedded default (no --config); 1 value differs from the default:" in log
    assert (
        f"   training.total_timesteps = 1  (default {DEFAULTS['training.total_timesteps']}; --timesteps)"
        in log
    )
