from __future__ import annotations

from pathlib import Path

import pytest

from perfmode.config import Config, ModeProfile, load_config
from perfmode.errors import UsageError
from perfmode.governor import knobs_for
from perfmode.settings import Mode

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_default_config_file_is_the_embedded_default() -> None:
    assert load_config(CONFIGS / "train_config.yaml") == Config()


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


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("ppo:\n  n_steps: 1\n", "ppo.n_steps is 1"),
        ("ppo:\n  net_arch: []\n", "ppo.net_arch"),
        ("training:\n  device: tpu\n", "training.device is 'tpu'"),
        ("modes:\n  performance:\n    torch_threads: many\n", "modes.performance.torch_threads"),
        ("modes:\n  turbo: {}\n", "unknown key config.modes.turbo"),
        ("env:\n  window: 0\n", "env.window is 0"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
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
