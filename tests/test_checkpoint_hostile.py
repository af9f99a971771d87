"""A checkpoint someone shares can do no harm: every file, array and tensor is checked first.

Each plant below is one class of attack (an inflating member, a non-regular file, a tensor
that is not what its name says, an optimizer or normalisation state out of range, a meta.json
that is not a config). ``train`` skips the checkpoint with one line naming the file and falls
back to the one before; ``evaluate`` refuses it with one line and a non-zero exit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints, open_checkpoint
from perfmode.cli.app import app
from perfmode.config.schema import Config, load_config
from perfmode.training.trainer import train
from tests.trainkit import write_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, /dev/zero: POSIX only")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run with checkpoints at 128 and 256 steps, trained once for the whole module."""
    root = tmp_path_factory.mktemp("made")
    path = write_config(
        root / "tiny.yaml", training={"total_timesteps": 256, "checkpoint_freq": 128}
    )
    (root / "home").mkdir()
    train(load_config(path), Home(root / "home"))
    return root / "home", path


@pytest.fixture
def run(made: tuple[Path, Path], tmp_path: Path) -> tuple[Home, Config, Path]:
    """A copy of that run: its home, its config and its newest checkpoint (to plant in)."""
    shutil.copytree(made[0], tmp_path / "home", symlinks=True)
    home = Home(tmp_path / "home")
    newest = list_checkpoints(home.checkpoints_dir())[0]
    assert newest.name == "step_0000000256"
    return home, load_config(made[1]), newest


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO) fails the test instead of hanging the suite."""

    def expire(*_: object) -> None:
        raise TimeoutError("blocked: a read never returned")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def warnings(perfmode_log: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """perfmode's log records (``perfmode_log`` in tests/conftest.py)."""
    return perfmode_log


# -- plants ---------------------------------------------------------------------------------


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "state.npz") as z:
        return {k: z[k] for k in z.files}


def npz_bomb(folder: Path) -> str:
    """obs_mean as 64 MiB of zeros deflated to ~65 KB, 500 times what this model's arrays take
    (the class of a 3 GiB one: the size is refused from the header, whatever it is)."""
    arrays = _arrays(folder)
    n = 8 * 2**20
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    )
    with zipfile.ZipFile(folder / "state.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            if name != "obs_mean":
                buf = io.BytesIO()
                np.save(buf, a)
                z.writestr(f"{name}.npy", buf.getvalue())
        with z.open("obs_mean.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            zeros = bytes(2**20)
            for _ in range(n * 8 // len(zeros)):
                f.write(zeros)
    assert (folder / "state.npz").stat().st_size < 2**20
    return "state.npz"


def npz_header_lies(folder: Path) -> str:
    """A tiny member whose header claims 10^9 float64 values."""
    arrays = _arrays(folder)
    del arrays["obs_var"]
    np.savez(folder / "state.npz", **arrays)
    with zipfile.ZipFile(folder / "state.npz", "a") as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
        )
        z.writestr("obs_var.npy", header.getvalue() + bytes(8))
    return "state.npz"


def npz_dev_zero(folder: Path) -> str:
    (folder / "state.npz").unlink()
    (folder / "state.npz").symlink_to("/dev/zero")
    return "state.npz"


def fifo_at(name: str) -> Callable[[Path], str]:
    def plant(folder: Path) -> str:
        (folder / name).unlink()
        os.mkfifo(folder / name)
        return name

    plant.__name__ = f"fifo_at_{name}"
    return plant


def _edit_policy(folder: Path, change: Callable[[dict], None]) -> str:
    weights = torch.load(folder / "policy.pth", weights_only=True)
    change(weights)
    torch.save(weights, folder / "policy.pth")
    return "policy.pth"


def policy_expanded_huge(folder: Path) -> str:
    def change(w: dict) -> None:
        w["action_net.weight"] = torch.zeros(1).expand(10**6, 10**6)

    return _edit_policy(folder, change)


def policy_expanded_layer(folder: Path) -> str:
    def change(w: dict) -> None:
        w["mlp_extractor.policy_net.0.weight"] = torch.zeros(1).expand(40_000, 10_000)

    return _edit_policy(folder, change)


def policy_expanded_right_shape(folder: Path) -> str:
    def change(w: dict) -> None:
        shape = w["action_net.weight"].shape
        w["action_net.weight"] = torch.zeros(1).expand(*shape)

    return _edit_policy(folder, change)


def policy_nan(folder: Path) -> str:
    def change(w: dict) -> None:
        w["action_net.weight"][0, 0] = float("nan")

    return _edit_policy(folder, change)


def policy_wrong_dtype(folder: Path) -> str:
    def change(w: dict) -> None:
        w["action_net.weight"] = w["action_net.weight"].to(torch.float64)

    return _edit_policy(folder, change)


def _edit_optimizer(folder: Path, change: Callable[[dict], None]) -> str:
    opt = torch.load(folder / "policy.optimizer.pth", weights_only=True)
    change(opt)
    torch.save(opt, folder / "policy.optimizer.pth")
    return "policy.optimizer.pth"


def optimizer_wrong_shape(folder: Path) -> str:
    def change(o: dict) -> None:
        o["state"][0]["exp_avg"] = torch.zeros(3, 3)

    return _edit_optimizer(folder, change)


def optimizer_expanded(folder: Path) -> str:
    def change(o: dict) -> None:
        shape = o["state"][0]["exp_avg"].shape
        o["state"][0]["exp_avg"] = torch.zeros(1).expand(*shape)

    return _edit_optimizer(folder, change)


def optimizer_betas(folder: Path) -> str:
    def change(o: dict) -> None:
        o["param_groups"][0]["betas"] = (5.0, -3.0)

    return _edit_optimizer(folder, change)


def optimizer_step_nan(folder: Path) -> str:
    def change(o: dict) -> None:
        for s in o["state"].values():
            s["step"] = torch.tensor(float("nan"))

    return _edit_optimizer(folder, change)


def _edit_state_json(folder: Path, change: Callable[[dict], None]) -> str:
    doc = json.loads((folder / "state.json").read_text())
    change(doc)
    (folder / "state.json").write_text(json.dumps(doc))
    return "state.json"


def gamma_huge(folder: Path) -> str:
    return _edit_state_json(folder, lambda d: d["normalization"].update(gamma=1e308))


def epsilon_zero(folder: Path) -> str:
    return _edit_state_json(folder, lambda d: d["normalization"].update(epsilon=0.0))


def obs_var_negative(folder: Path) -> str:
    arrays = _arrays(folder)
    arrays["obs_var"] = -np.abs(arrays["obs_var"]) - 1.0
    np.savez(folder / "state.npz", **arrays)
    return "state.npz"


def _edit_meta(folder: Path, change: Callable[[dict], None]) -> str:
    meta = json.loads((folder / "meta.json").read_text())
    change(meta)
    (folder / "meta.json").write_text(json.dumps(meta))
    return "meta.json"


def meta_deep(folder: Path) -> str:
    (folder / "meta.json").write_text(
        json.dumps({"timesteps": 256})[:-1] + ', "config": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    )
    return "meta.json"


def meta_ppo_not_a_section(folder: Path) -> str:
    return _edit_meta(folder, lambda m: m["config"].update(ppo="x"))


def meta_net_arch_not_a_list(folder: Path) -> str:
    return _edit_meta(folder, lambda m: m["config"]["ppo"].update(net_arch=5))


PLANTS = [
    npz_bomb,
    npz_header_lies,
    npz_dev_zero,
    fifo_at("state.json"),
    fifo_at("state.npz"),
    fifo_at("policy.pth"),
    fifo_at("policy.optimizer.pth"),
    fifo_at("meta.json"),
    policy_expanded_huge,
    policy_expanded_layer,
    policy_expanded_right_shape,
    policy_nan,
    policy_wrong_dtype,
    optimizer_wrong_shape,
    optimizer_expanded,
    optimizer_betas,
    optimizer_step_nan,
    gamma_huge,
    epsilon_zero,
    obs_var_negative,
    meta_deep,
    meta_ppo_not_a_section,
    meta_net_arch_not_a_list,
]
# What evaluate reads: the weights, the normalisation and meta.json (not the optimizer).
EVALUATE_PLANTS = [p for p in PLANTS if "optimizer" not in p.__name__]


def _all_finite(folder: Path) -> bool:
    state = open_checkpoint(folder).state
    assert state is not None
    tensors = [*state.policy.values()]
    tensors += [t for s in state.optimizer["state"].values() for t in s.values()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.__name__)
def test_train_skips_a_hostile_checkpoint_with_one_line_and_resumes_from_the_one_before(
    run: tuple[Home, Config, Path], plant: Callable[[Path], str], warnings
) -> None:
    home, cfg, newest = run
    name = plant(newest)
    result = train(cfg, home)  # the one before is at 128 of the 256 steps
    assert result.resumed_from == 128
    said = [r.getMessage() for r in warnings.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, said
    assert str(newest / name) in said[0] or (f"{newest}" in said[0] and name in said[0]), said
    assert "\n" not in said[0] and len(said[0]) < 400, said[0]
    assert "falling back to the one before" in said[0]
    # What it trained on from there is sound, and the planted folder was replaced by it.
    assert _all_finite(list_checkpoints(home.checkpoints_dir())[0])


@pytest.mark.parametrize("plant", EVALUATE_PLANTS, ids=lambda p: p.__name__)
def test_evaluate_refuses_a_hostile_checkpoint_with_one_line(
    run: tuple[Home, Config, Path], plant: Callable[[Path], str]
) -> None:
    home, _, newest = run
    name = plant(newest)
    res = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(newest), "--home", str(home.root)]
    )
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    assert name in errors[0] and len(errors[0]) < 400, errors[0]


def test_evaluate_refuses_a_data_path_in_meta_json_that_is_a_fifo(
    run: tuple[Home, Config, Path], tmp_path: Path
) -> None:
    home, _, newest = run
    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)
    _edit_meta(newest, lambda m: m["config"]["env"].update(data=str(fifo)))
    res = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(newest), "--home", str(home.root)]
    )
    assert res.exit_code != 0
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "FIFO" in errors[0] and str(fifo) in errors[0], res.output


def test_the_unplanted_checkpoint_evaluates_and_resumes(run: tuple[Home, Config, Path]) -> None:
    """The checks above refuse the plants, not the checkpoints perfmode writes."""
    home, cfg, newest = run
    res = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(newest), "--home", str(home.root), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert train(cfg.with_overrides(total_timesteps=384), home).resumed_from == 256


@pytest.mark.parametrize(
    "plant",
    [policy_expanded_huge, policy_expanded_layer, policy_nan, policy_wrong_dtype],
    ids=lambda p: p.__name__,
)
def test_evaluate_refuses_the_same_tensors_in_a_shared_sb3_zip(
    run: tuple[Home, Config, Path], plant: Callable[[Path], str], tmp_path: Path
) -> None:
    home, _, newest = run
    plant(newest)
    model = tmp_path / "shared.zip"
    with zipfile.ZipFile(model, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data", "{}")
        for name in ("policy.pth", "policy.optimizer.pth"):
            z.write(newest / name, name)
    res = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(model), "--home", str(home.root)]
    )
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "policy.pth" in errors[0] and len(errors[0]) < 400, res.output
