from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from perfmode.base.modes import Mode
from perfmode.config.schema import (
    Config,
    ModeProfile,
    ModesConfig,
    default_config_text,
    load_config,
    load_config_file,
)
from perfmode.config.sections import flatten, to_mapping
from perfmode.errors import UsageError
from perfmode.governor.governor import knobs_for

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULTS = flatten(to_mapping(Config()))


def test_default_config_file_is_the_embedded_default(tmp_path: Path) -> None:
    repo_text = (CONFIGS / "train_config.yaml").read_text(encoding="utf-8")
    assert repo_text == default_config_text()  # what `perfmode config init` writes
    assert load_config(CONFIGS / "train_config.yaml") == Config()
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text(default_config_text(), encoding="utf-8")
    assert load_config(shipped) == Config()


def test_gpu_config_loads_with_the_original_batch_and_epochs() -> None:
    config = load_config(CONFIGS / "train_config_gpu_optimized.yaml")
    assert (config.ppo.batch_size, config.ppo.n_epochs) == (128, 4)
    perf = knobs_for(Mode.PERFORMANCE, config)
    assert (perf.batch_size, perf.n_epochs) == (256, 6)


def test_mode_knobs_follow_the_profiles() -> None:
    config = Config()
    quiet, perf = knobs_for(Mode.QUIET, config), knobs_for(Mode.PERFORMANCE, config)
    assert (quiet.batch_size, quiet.n_epochs, quiet.torch_threads, quiet.cpu_share) == (
        128,
        4,
        1,
        0.5,
    )
    # The default changes resources only: performance learns exactly what quiet learns.
    assert (perf.batch_size, perf.n_epochs, perf.cpu_share) == (128, 4, 1.0)
    assert perf.torch_threads is None  # auto: measured by the governor
    assert not config.modes.performance.changes_learning


def test_batch_is_kept_between_2_and_the_rollout() -> None:
    from dataclasses import replace

    config = Config()
    huge = replace(config, modes=replace(config.modes, performance=ModeProfile(64, 1, "all", 1.0)))
    assert knobs_for(Mode.PERFORMANCE, huge).batch_size == config.rollout_size
    assert knobs_for(Mode.PERFORMANCE, config, batch_cap=100).batch_size == 100


# --- layering: a key the file does not write keeps the embedded default's value there -------


def _leaf_types(cls: Any, prefix: str = "") -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_leaf_types(hints[f.name], f"{key}."))
        else:
            out[key] = hints[f.name]
    return out


LEAF_TYPES = _leaf_types(Config)


# Keys whose valid values the type alone does not tell (checked against a list in code).
CHOSEN = {
    "env.symbol": "AAPL",
    "env.date_format": "month-first",
    "sweep.space": {"ppo.gamma": {"choice": [0.9, 0.99]}},
}


def _other_values(tp: Any, current: Any) -> list[Any]:
    """Values other than ``current`` that the field's type admits, likeliest in range first."""
    args = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    )
    literals = [v for a in args if typing.get_origin(a) is Literal for v in typing.get_args(a)]
    if isinstance(current, bool):
        return [not current]
    if isinstance(current, str):
        others = [v for v in literals if v != current]
        return others + ([2] if int in args else []) + [f"{current}-other"]
    if current is None:
        return [0.5, 50.0, 2] if float in args or int in args else ["other"]
    if isinstance(current, int):
        return [current + 2, current + 1, current - 1]  # +2 keeps odd counts odd
    if isinstance(current, float):
        return [round(current * 0.9, 9), round(current * 1.1, 9)] if current else [0.05, 1.0]
    if isinstance(current, list):
        return [[*current, current[-1]], current[:-1]]
    raise AssertionError(f"no other value for {tp} {current!r}")


def _nested(key: str, value: Any) -> dict[str, Any]:
    doc: Any = value
    for part in reversed(key.split(".")):
        doc = {part: doc}
    return doc


def test_every_leaf_of_the_default_is_covered_below() -> None:
    assert set(LEAF_TYPES) == set(DEFAULTS)
    sections = {k.split(".")[0] for k in DEFAULTS}
    assert sections == {f.name for f in dataclasses.fields(Config)}
    assert (
        {k.rsplit(".", 1)[0] for k in DEFAULTS if k.startswith("modes.")}
        == {f"modes.{f.name}" for f in dataclasses.fields(ModesConfig)}
        >= {"modes.quiet", "modes.performance"}
    )


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_a_one_key_file_changes_that_key_only(tmp_path: Path, key: str) -> None:
    candidates = [CHOSEN[key]] if key in CHOSEN else _other_values(LEAF_TYPES[key], DEFAULTS[key])
    path = tmp_path / "one.yaml"
    refused = []
    for value in candidates:  # the first the key's range admits
        path.write_text(yaml.safe_dump(_nested(key, value)))
        try:
            loaded = flatten(to_mapping(load_config(path)))
            break
        except UsageError as e:
            refused.append(str(e))
    else:
        raise AssertionError(f"no candidate value loads; add one to CHOSEN: {refused}")
    assert loaded[key] != DEFAULTS[key]
    assert {k: v for k, v in loaded.items() if k != key} == {
        k: v for k, v in DEFAULTS.items() if k != key
    }


def test_a_partial_performance_profile_keeps_the_performance_defaults(tmp_path: Path) -> None:
    # The case: tuning two multipliers used to drop performance mode to one thread
    # and half the CPU (the profile dataclass's field defaults).
    path = tmp_path / "perf.yaml"
    path.write_text("modes:\n  performance:\n    batch_size_multiplier: 3.0\n")
    config, default = load_config(path), Config()
    perf, base = config.modes.performance, default.modes.performance
    assert perf == dataclasses.replace(base, batch_size_multiplier=3.0)
    assert config.modes.quiet == default.modes.quiet
    got, want = knobs_for(Mode.PERFORMANCE, config), knobs_for(Mode.PERFORMANCE, default)
    assert (got.torch_threads, got.cpu_share) == (want.torch_threads, want.cpu_share)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# nothing\n",
        "env:\n",
        "modes:\n  performance:\n",
        "modes: {quiet: {}, performance: null}\n",
    ],
)
def test_empty_file_and_empty_sections_are_the_default(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert load_config(path) == Config()


def test_origins_are_the_lines_the_file_writes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "# tuned\nmodes:\n  performance:\n    cpu_share: 0.9\ntraining: {n_envs: 2, seed: 4}\n"
    )
    loaded = load_config_file(path)
    assert loaded.origin("modes.performance.cpu_share") == f"{path}:4"
    assert loaded.origin("training.seed") == f"{path}:5"
    assert loaded.origin("modes.performance.torch_threads") is None
    assert loaded.origin("env.window") is None
    assert load_config_file(None).path is None


# --- bad keys and values: one line, naming the key and its line, before anything starts ---


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("ppo:\n  n_steps: 1\n", "c.yaml:2: ppo.n_steps is 1"),
        ("ppo:\n  net_arch: []\n", "c.yaml:2: ppo.net_arch"),
        ("ppo:\n  net_arch: [64, x]\n", "c.yaml:2: ppo.net_arch[1] is 'x'"),
        ("training:\n  device: tpu\n", "c.yaml:2: training.device is 'tpu'"),
        (
            "modes:\n  performance:\n    torch_threads: many\n",
            "c.yaml:3: modes.performance.torch_threads",
        ),
        ("modes:\n  quiet:\n    cpu_share: 0\n", "c.yaml:3: modes.quiet.cpu_share is 0.0"),
        ("modes:\n  turbo: {}\n", "c.yaml:2: unknown key modes.turbo; valid keys: quiet,"),
        ("trainin:\n  seed: 1\n", "c.yaml:1: unknown key trainin; valid keys: env, ppo,"),
        ("env:\n  window: 0\n", "c.yaml:2: env.window is 0"),
        ("env: [1]\n", "c.yaml:1: env must be a mapping of keys, got a list"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("env: {window: [1, 2\n", "not valid YAML at line 2"),
        ("env:\n  split: 2020-13-45\n", "line 2: cannot read '2020-13-45' (month must be"),
        (
            "ppo:\n  n_steps: 256\n  batch_size: 64\n  n_steps: 1024\n",
            "line 4: ppo.n_steps is written twice (lines 2 and 4)",
        ),
        ("ppo: {}\nenv: {}\nppo: {}\n", "line 3: ppo is written twice (lines 1 and 3)"),
        # Sizes that would take the machine's memory before a single step.
        ("ppo:\n  net_arch: [100000000]\n", "c.yaml:2: ppo.net_arch is [100000000]; it must be"),
        (
            "ppo:\n  net_arch: [64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64]\n",
            "a list of 1 to 16 layer sizes, each from 1 to 65,536",
        ),
        ("ppo:\n  net_arch: [60000, 60000]\n", "(these need 3,600 million per network)"),
        (
            "ppo:\n  n_steps: 1000000000\n",
            "c.yaml:2: ppo.n_steps is 1000000000; it must be at most 524,288 with training.n_envs 8",
        ),
        (
            "modes:\n  quiet: {cpu_share: 0.3, cpu_share: 0.4}\n",
            "line 2: modes.quiet.cpu_share is written twice (lines 2 and 2)",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_merge_key_may_be_overridden_without_counting_as_written_twice(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "modes:\n  quiet: &q {cpu_share: 0.3, torch_threads: 1}\n"
        "  performance: {<<: *q, cpu_share: 0.9}\n"
    )
    modes = load_config(path).modes
    assert (modes.performance.cpu_share, modes.performance.torch_threads) == (0.9, 1)
    assert modes.quiet.cpu_share == 0.3


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"does not exist.*perfmode config init"):
        load_config(tmp_path / "nope.yaml")


def test_temperature_guard_defaults_and_bad_values(tmp_path: Path) -> None:
    modes = Config().modes
    assert (modes.performance.gpu_max_temp_c, modes.performance.gpu_cooldown_c) == (83, 8)
    assert modes.quiet.gpu_max_temp_c is None  # off: it would fall back to quiet itself
    path = tmp_path / "c.yaml"
    for text, message in (
        ("modes:\n  performance:\n    gpu_max_temp_c: 500\n", "gpu_max_temp_c is 500.0"),
        ("modes:\n  performance:\n    gpu_max_temp_c: hot\n", "gpu_max_temp_c is 'hot'"),
        ("modes:\n  quiet:\n    gpu_cooldown_c: 0\n", "modes.quiet.gpu_cooldown_c is 0.0"),
    ):
        path.write_text(text)
        with pytest.raises(UsageError, match=message):
            load_config(path)
    path.write_text("modes:\n  performance:\n    gpu_max_temp_c: null\n")
    assert load_config(path).modes.performance.gpu_max_temp_c is None
