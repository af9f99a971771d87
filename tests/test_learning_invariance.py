"""Switching modes does not change what is learned (the default profiles change resources only)."""

from __future__ import annotations

import itertools
import json
import threading
import time

import torch

from perfmode.base.home import Home
from perfmode.checkpoint.io import read_weights
from perfmode.config.schema import Config, load_config
from perfmode.settings.store import SettingsStore
from perfmode.training.trainer import train
from tests.trainkit import metrics_rows, write_config


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return read_weights(checkpoint / "policy.pth")


def _config(tmp_path, **modes):
    # The default profiles' learning knobs (multipliers) with the threads pinned, so the
    # only differences between the modes are CPU share and priority.
    return load_config(
        write_config(
            tmp_path / "tiny.yaml",
            # Rollouts of 512 steps: long enough for a hand edit to land in each cycle.
            ppo={"n_steps": 256, "batch_size": 64},
            training={
                "total_timesteps": 16 * 512,
                "checkpoint_freq": 2048,
                "nice": 0,
                "poll_interval": 0.05,
            },
            modes=modes,
        )
    )


def _flip_at_every_update(home: Home, stop: threading.Event) -> None:
    """A person (or script) hand-editing settings.json after every update."""
    seen, mode = 0, "quiet"
    while not stop.is_set():
        rows = len(metrics_rows(home))
        if rows > seen:
            seen = rows
            mode = "performance" if mode == "quiet" else "quiet"
            home.settings.write_text(json.dumps({"performance_mode": mode}))
        time.sleep(0.005)


def _train(config: Config, home: Home, flip: bool):
    threads = torch.get_num_threads()
    stop = threading.Event()
    flipper = threading.Thread(target=_flip_at_every_update, args=(home, stop), daemon=True)
    if flip:
        flipper.start()
    try:
        return train(config, home)
    finally:
        stop.set()
        if flip:
            flipper.join()
        torch.set_num_threads(threads)


def test_default_profiles_learn_nothing_different(tmp_path) -> None:
    defaults = Config().modes
    assert not defaults.quiet.changes_learning and not defaults.performance.changes_learning


def test_switching_at_every_update_gives_bit_identical_weights(tmp_path) -> None:
    config = _config(
        tmp_path, quiet={"torch_threads": 1}, performance={"torch_threads": 1, "cpu_share": 1.0}
    )
    steady_home, switched_home = Home(tmp_path / "steady"), Home(tmp_path / "switched")
    for h in (steady_home, switched_home):
        h.root.mkdir()
    SettingsStore(steady_home.settings).set_mode("quiet", changed_by="cli")
    steady = _train(config, steady_home, flip=False)
    switched = _train(config, switched_home, flip=True)

    modes = [r["mode"] for r in metrics_rows(switched_home)]
    changes = sum(a != b for a, b in itertools.pairwise(modes))
    assert changes >= 5, modes  # it really switched, many times
    a, b = _weights(steady.checkpoint), _weights(switched.checkpoint)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_different_update_thread_count_only_rounds_differently(tmp_path) -> None:
    """Why 'auto' threads are not bit-exact: more threads sum in another order. Bounded."""

    def config(threads: int) -> Config:
        return load_config(
            write_config(
                tmp_path / f"t{threads}.yaml",
                training={"total_timesteps": 1024, "checkpoint_freq": 1024, "nice": 0},
                modes={"quiet": {"torch_threads": threads, "cpu_share": 1.0}},
            )
        )

    one, two = config(1), config(2)
    homes = [Home(tmp_path / "one"), Home(tmp_path / "two")]
    results = []
    for config, h in zip((one, two), homes, strict=True):
        h.root.mkdir()
        SettingsStore(h.settings).set_mode("quiet", changed_by="cli")
        results.append(_train(config, h, flip=False))
    a, b = _weights(results[0].checkpoint), _weights(results[1].checkpoint)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(float(a[k].abs().max()) for k in a)
    # 8 updates: rounding-level differences (float32 epsilon is 1.2e-7), not a changed run.
    assert worst <= 1e-4 * scale, (worst, scale)
