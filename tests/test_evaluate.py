"""``perfmode evaluate``: metrics, baselines, a tiny saved PPO model, the plot and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfmode.base.home import Home
from perfmode.config.sections import to_mapping
from perfmode.env import EnvConfig, Series, TradingEnv, load_market
from perfmode.env.features import feature_table
from perfmode.errors import PerfmodeError, UsageError
from perfmode.evaluation.evaluate import (
    Trace,
    evaluate_baseline,
    evaluate_checkpoint,
    metrics,
    resolve_checkpoint,
    run_policy,
)
from tests.ckptkit import Plant, plant_in_zip_schedule, planted_pickle, write_old_checkpoint

CFG = EnvConfig(window=8, synthetic_length=400, episode_length=64)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def prices_csv(tmp_path: Path, n: int = 60) -> tuple[Path, np.ndarray]:
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.01, n)))
    days = np.busday_offset("2022-01-03", np.arange(n), roll="forward")
    lines = ["Date,Close"] + [f"{d},{float(c)!r}" for d, c in zip(days, close, strict=True)]
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, close


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PPO model saved as a bare .zip, as a trainer checkpoint folder, and as a
    folder in the old format (model.zip, vecnormalize.pkl)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from perfmode.checkpoint.folders import save_checkpoint
    from perfmode.checkpoint.state import capture

    root = tmp_path_factory.mktemp("ckpt")
    market = load_market(CFG)
    venv = VecNormalize(DummyVecEnv([lambda: TradingEnv(market.train, CFG)]))
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"net_arch": [8]},
        seed=0,
        device="cpu",
    )
    model.learn(128)
    model.save(root / "bare.zip")
    meta = {"config": {"env": to_mapping(CFG)}}
    folder = save_checkpoint(root / "runs" / "default" / "checkpoints", capture(model, venv), meta)
    old = write_old_checkpoint(root / "old", model, venv, meta)
    return {"zip": root / "bare.zip", "folder": folder.path, "old": old, "home": root}


# --- metrics and baselines ------------------------------------------------------


def test_metrics_of_a_hand_made_trace() -> None:
    trace = Trace(equity=np.array([1.0, 1.1, 0.99, 1.2]), position=np.array([1.0, 1.0, 0.0]))
    m = metrics(trace, periods_per_year=252)
    assert m["total_return"] == pytest.approx(0.2)
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["trades"] == 2 and m["exposure"] == pytest.approx(2 / 3)
    step = np.array([0.1, -0.1, 1.2 / 0.99 - 1])
    assert m["sharpe"] == pytest.approx(step.mean() / step.std(ddof=1) * np.sqrt(252))


def test_flat_returns_exactly_zero() -> None:
    result = evaluate_baseline("flat", CFG)
    assert set(result) == {"policy", "buy_and_hold", "data"}
    p = result["policy"]
    assert p["name"] == "flat"
    assert (p["total_return"], p["sharpe"], p["max_drawdown"]) == (0.0, 0.0, 0.0)
    assert (p["trades"], p["exposure"], p["halted_at"]) == (0, 0.0, None)


def test_buy_and_hold_return_is_the_price_ratio_of_the_test_split(tmp_path: Path) -> None:
    path, close = prices_csv(tmp_path)
    cfg = EnvConfig(window=8, split=0.5)
    result = evaluate_baseline("buy-and-hold", cfg, str(path))
    expected = close[-1] / close[30] - 1
    assert result["policy"]["total_return"] == pytest.approx(expected, rel=1e-12)
    assert result["buy_and_hold"]["total_return"] == pytest.approx(expected, rel=1e-12)
    assert result["buy_and_hold"]["trades"] == 1 and result["buy_and_hold"]["exposure"] == 1.0
    data = result["data"]
    assert data["source"] == str(path) and data["steps"] == 29
    assert data["test"] == {"start": "2022-02-14", "end": "2022-03-25", "rows": 30}
    json.dumps(result)  # JSON-able as it is


def test_unknown_baseline() -> None:
    with pytest.raises(UsageError, match="unknown baseline"):
        evaluate_baseline("random", CFG)


def test_drawdown_limit_closes_the_position_for_the_rest_of_the_test() -> None:
    close = np.r_[np.full(10, 100.0), 100.0 * 0.9 ** np.arange(1, 11), np.full(10, 40.0)]
    time = np.datetime64("2022-01-03", "ns") + np.arange(len(close)) * np.timedelta64(1, "D")
    cfg = EnvConfig(window=4, max_drawdown=0.25, transaction_cost=0.01, episode_length=None)
    env = TradingEnv(Series(close, time, feature_table(close)), cfg)
    trace = run_policy(env, lambda _obs: 2)
    assert trace.halted_at is not None
    after = trace.equity[trace.halted_at + 1 :]
    assert np.all(after == after[0])
    assert after[0] == pytest.approx(trace.equity[trace.halted_at] * 0.99)
    assert np.all(trace.position[trace.halted_at :] == 0.0)


# --- checkpoints ------------------------------------------------------------------


def test_checkpoint_zip_runs_deterministically(trained: dict[str, Path]) -> None:
    first = evaluate_checkpoint(trained["zip"], CFG)
    assert first == evaluate_checkpoint(trained["zip"], CFG)
    p = first["policy"]
    assert p["name"].startswith("checkpoint ")
    assert all(np.isfinite(p[k]) for k in ("total_return", "sharpe", "max_drawdown"))
    assert 0.0 <= p["exposure"] <= 1.0 and isinstance(p["trades"], int)
    assert first["data"]["steps"] == 80 - 1
    assert first["buy_and_hold"] == evaluate_baseline("buy-and-hold", CFG)["buy_and_hold"]


def test_checkpoint_folder_uses_its_saved_env_config(trained: dict[str, Path]) -> None:
    # Defaults say window 32; meta.json says 8, which is what the model needs.
    result = evaluate_checkpoint(trained["folder"])
    assert result["data"]["window"] == 8
    assert result == evaluate_checkpoint(trained["folder"], EnvConfig(window=16))


def test_checkpoint_folder_with_data_override(trained: dict[str, Path], tmp_path: Path) -> None:
    path, close = prices_csv(tmp_path)
    result = evaluate_checkpoint(trained["folder"], None, str(path))
    assert result["data"]["source"] == str(path)
    cut = int(len(close) * CFG.split)
    assert result["buy_and_hold"]["total_return"] == pytest.approx(close[-1] / close[cut] - 1)


def test_window_mismatch_is_a_clear_error(trained: dict[str, Path]) -> None:
    with pytest.raises(PerfmodeError, match=r"expects observations of shape \(27,\).*window=16"):
        evaluate_checkpoint(trained["zip"], CFG.replace(window=16))
    with pytest.raises(PerfmodeError, match="position_levels=5"):
        evaluate_checkpoint(trained["zip"], CFG.replace(position_levels=5))


def test_bad_checkpoint_files(trained: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="is not a Stable-Baselines3 model"):
        evaluate_checkpoint(junk, CFG)
    with pytest.raises(UsageError, match="does not exist"):
        evaluate_checkpoint(tmp_path / "nope.zip", CFG)
    with pytest.raises(UsageError, match=r"has no policy\.pth"):
        evaluate_checkpoint(tmp_path, CFG)
    folder = tmp_path / "ck"
    shutil.copytree(trained["folder"], folder)
    (folder / "meta.json").write_text('{"config": {"env": {"window": 1}}}')
    with pytest.raises(UsageError, match=r"meta\.json: config: env\.window is 1"):
        evaluate_checkpoint(folder)
    (folder / "meta.json").write_text('{"config": []}')
    assert evaluate_checkpoint(folder, CFG)["data"]["window"] == 8
    (folder / "state.npz").write_bytes(b"garbage")
    with pytest.raises(PerfmodeError, match=r"state\.npz: not a readable \.npz"):
        evaluate_checkpoint(folder, CFG)
    (folder / "policy.pth").write_bytes(b"")
    with pytest.raises(PerfmodeError, match=r"policy\.pth: not a torch state dict"):
        evaluate_checkpoint(folder, CFG)


# --- nothing in a checkpoint runs ------------------------------------------------------


def test_shared_zip_with_code_in_its_schedule_is_evaluated_without_running_it(
    trained: dict[str, Path], tmp_path: Path, cli
) -> None:
    from stable_baselines3 import PPO

    marker = tmp_path / "ran"
    shared = tmp_path / "shared-model.zip"
    plant_in_zip_schedule(trained["zip"], shared, marker)
    PPO.load(shared)  # what evaluate did before: it loads fine, and ran the code
    assert marker.exists(), "the planted pickle should run when SB3 loads the zip"
    marker.unlink()

    config = tmp_path / "c.yaml"
    config.write_text("env:\n  window: 8\n  synthetic_length: 400\n")
    res = cli("evaluate", "--checkpoint", str(shared), "--config", str(config), "--json")
    assert res.exit_code == 0, res.output
    assert not marker.exists()
    # The same policy as the zip it was made from: the weights are all that was read.
    planted = json.loads(res.stdout)
    assert (
        planted["policy"]["total_return"]
        == evaluate_checkpoint(trained["zip"], CFG)["policy"]["total_return"]
    )


def test_old_checkpoint_with_a_planted_vecnormalize_is_refused_in_one_line(
    trained: dict[str, Path], tmp_path: Path, cli, home: Home
) -> None:
    marker = tmp_path / "ran"
    folder = home.checkpoints_dir() / trained["old"].name
    shutil.copytree(trained["old"], folder)
    (folder / "vecnormalize.pkl").write_bytes(planted_pickle(marker))
    res = cli("evaluate", "--checkpoint", "latest")
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in res.output
    assert "vecnormalize.pkl is a pickle" in errors[0] and "--trust-checkpoint" in errors[0]
    assert not marker.exists()


def test_old_checkpoint_folder_is_evaluated_when_trusted(trained: dict[str, Path]) -> None:
    trusted = evaluate_checkpoint(trained["old"], trust=True)
    assert (
        trusted["policy"]["total_return"]
        == evaluate_checkpoint(trained["folder"])["policy"]["total_return"]
    )


def test_pickles_inside_data_files_are_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "ran"
    folder = tmp_path / "ck"
    shutil.copytree(trained["folder"], folder)
    torch.save(Plant(marker), folder / "policy.pth")
    with pytest.raises(PerfmodeError, match=r"policy\.pth: .*loading it would run code"):
        evaluate_checkpoint(folder)
    shutil.copy(trained["folder"] / "policy.pth", folder / "policy.pth")
    with np.load(folder / "state.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["obs_mean"] = np.array([Plant(marker)], dtype=object)
    np.savez(folder / "state.npz", **arrays)
    with pytest.raises(PerfmodeError, match=r"state\.npz: not a readable \.npz"):
        evaluate_checkpoint(folder)
    assert not marker.exists()


def test_plot_is_written(trained: dict[str, Path], tmp_path: Path) -> None:
    for name, run in {
        "policy.png": lambda p: evaluate_checkpoint(trained["zip"], CFG, plot=p),
        "flat.png": lambda p: evaluate_baseline("flat", CFG, plot=p),
    }.items():
        run(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    with pytest.raises(UsageError, match="does not exist"):
        evaluate_baseline("flat", CFG, plot=tmp_path / "no" / "such.png")


def test_resolve_checkpoint(trained: dict[str, Path], tmp_path: Path) -> None:
    empty = Home(tmp_path)
    assert resolve_checkpoint(empty, "a/model.zip") == Path("a/model.zip")
    with pytest.raises(PerfmodeError, match=r"no checkpoints in .*runs; train first"):
        resolve_checkpoint(empty, "latest")
    home = Home(trained["home"])
    older = trained["folder"].parent / "step_0000000064"
    older.mkdir(exist_ok=True)
    assert resolve_checkpoint(home, "latest") == trained["folder"]


# --- CLI -------------------------------------------------------------------------------


def test_cli_baseline_json_and_table(cli, tmp_path: Path) -> None:
    path, _ = prices_csv(tmp_path)
    res = cli("evaluate", "--baseline", "flat", "--data", str(path), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["policy"]["total_return"] == 0.0
    res = cli("evaluate", "--baseline", "buy-and-hold", "--data", str(path))
    assert res.exit_code == 0, res.output
    assert res.stderr.count("📈 Data ") == 1  # how the data was read, logged once
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["buy-and-hold", "buy-and-hold"]
    assert [ln.split()[0] for ln in lines[1:6]] == ["total", "sharpe", "max", "trades", "exposure"]
    assert len({len(ln) for ln in lines[:6]}) == 1  # aligned columns
    assert lines[6].startswith(f"Test data: {path}")


def test_cli_checkpoint_with_config_and_plot(cli, trained: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("env:\n  window: 8\n  synthetic_length: 400\n")
    png = tmp_path / "eq.png"
    res = cli(
        "evaluate", "--checkpoint", str(trained["zip"]), "--config", str(config), "--plot", str(png)
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].split() == ["policy", "buy-and-hold"]
    assert f"Plot: {png}" in res.output and png.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "pass either --checkpoint PATH or --baseline"),
        (("--baseline", "flat", "--checkpoint", "x.zip"), 2, "pass either"),
        (("--checkpoint", "latest"), 1, "no checkpoints in"),
        (("--baseline", "flat", "--data", "missing.csv"), 2, "missing.csv does not exist"),
    ],
)
def test_cli_errors_are_one_line(cli, args: tuple[str, ...], code: int, message: str) -> None:
    res = cli("evaluate", *args)
    assert res.exit_code == code
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("Error: ") and message in res.stderr
    assert isinstance(res.exception, SystemExit)


def test_cli_module_imports_nothing_heavy() -> None:
    heavy = ["torch", "stable_baselines3", "pandas", "matplotlib", "perfmode.env"]
    code = f"import sys, perfmode.cli.evaluate\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"imported at module level: {out.stdout}"
