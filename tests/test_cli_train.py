"""``perfmode train``'s flags and ``set --json``, through the CLI (in-process: fast; the
trainer's cross-process behaviour is in test_trainer_live.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from perfmode.base.home import Home
from perfmode.checkpoint.folders import list_checkpoints
from tests.trainkit import documented_status_keys, metrics_rows, write_config

FAST_QUIET = {"quiet": {"cpu_share": 1.0}}


def test_runs_are_kept_apart_and_a_seed_repeats_a_run(
    cli, home: Home, tmp_path: Path, learned
) -> None:
    config = write_config(tmp_path / "c.yaml", training={"total_timesteps": 256}, modes=FAST_QUIET)
    for run, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        result = cli("train", "--config", str(config), "--run", run, "--seed", seed)
        assert result.exit_code == 0, result.stderr
        assert f"checkpoint: {home.checkpoints_dir(run) / 'step_0000000256'}" in result.stdout
    a, b, c = learned["end"]
    for name, weights in a["policy"].items():
        assert torch.equal(weights, b["policy"][name]), name
    assert any(not torch.equal(w, c["policy"][name]) for name, w in a["policy"].items())
    rewards = {run: [r["ep_rew_mean"] for r in metrics_rows(home, run)] for run in "abc"}
    assert rewards["a"] == rewards["b"] != rewards["c"]
    # Each run has its own checkpoints, metrics and status; status lists them all.
    for run in "abc":
        assert [p.name for p in list_checkpoints(home.checkpoints_dir(run))] == ["step_0000000256"]
    report = json.loads(cli("status", "--json").stdout)
    assert sorted(r["run"] for r in report["runs"]) == ["a", "b", "c"]
    assert {r["timesteps"] for r in report["runs"]} == {256}
    # At its target, a run has nothing to do and says so.
    again = cli("train", "--config", str(config), "--run", "a")
    assert again.exit_code == 0, again.stderr
    assert "Run 'a' is already at 256 steps (target 256); nothing to do." in again.stderr
    assert len(learned["end"]) == 3


def prices_csv(path: Path, rows: int = 300) -> Path:
    """A daily OHLCV file in the common export format."""
    close = 50.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.02, rows)))
    days = np.busday_offset("2021-01-04", np.arange(rows), roll="forward")
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for day, c in zip(days, close, strict=True):
        lines.append(f"{day},{c:.4f},{c * 1.01:.4f},{c * 0.99:.4f},{c:.4f},{c:.4f},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_csv_is_what_the_run_learns_from_and_is_evaluated_on(
    cli, home: Home, tmp_path: Path
) -> None:
    csv = prices_csv(tmp_path / "prices.csv")
    config = write_config(tmp_path / "c.yaml", training={"total_timesteps": 256}, modes=FAST_QUIET)
    result = cli("train", "--config", str(config), "--data", str(csv))
    assert result.exit_code == 0, result.stderr
    # Evaluating the checkpoint without --data uses the prices it was trained on.
    report = json.loads(cli("evaluate", "--checkpoint", "latest", "--json").stdout)
    assert report["data"]["source"] == str(csv)
    assert report["data"]["test"]["end"].startswith(str(np.busday_offset("2021-01-04", 299)))


def test_set_json_prints_the_status_with_the_new_mode(cli) -> None:
    result = cli("set", "performance", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    top, _ = documented_status_keys()
    assert top <= report.keys(), top - report.keys()
    assert (report["requested_mode"], report["changed_by"]) == ("performance", "cli")
    assert report["settings_ok"] is True and report["trainer"] is None
