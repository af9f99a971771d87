"""Sweeps without trainers: the sweep: section, the validation part, the learnable synthetic
market, refusals before anything starts, --show and the storage's clock."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

from perfmode.config.schema import Config, load_config
from perfmode.config.sweep import DEFAULT_SPACE, SweepConfig, check_space_against, for_command
from perfmode.env import EnvConfig, load_market
from perfmode.errors import UsageError
from perfmode.sweep.trials import suggest, trial_config
from tests.sweepkit import _free_port


def _write(tmp_path: Path, sweep: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"training": {"n_envs": 2}, "sweep": sweep}))
    return path


@pytest.mark.parametrize(
    ("space", "says"),
    [
        ({"ppo.learning_rate": {"log_uniform": [1.0e-3, 1.0e-5]}}, "lo below hi"),
        ({"ppo.learning_rate": {"log_uniform": [0, 1.0e-3]}}, "above 0"),
        ({"ppo.learning_rate": {"uniform": [1.0e-4, 2.0]}}, "ppo.learning_rate is 2.0"),
        ({"ppo.n_steps": {"choice": [64, 1]}}, "ppo.n_steps is 1"),
        ({"ppo.n_steps": {"between": [1, 2]}}, "log_uniform"),
        ({"training.total_timesteps": {"int": [1, 9]}}, "cannot be swept"),
    ],
)
def test_a_bad_range_is_one_line_before_anything_starts(
    tmp_path: Path, cli, home, space: dict, says: str
) -> None:
    result = cli("sweep", "bad", "--config", str(_write(tmp_path, {"space": space})))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], lines
    assert "s.yaml" in lines[0]
    assert not (home.root / "sweeps").exists() and not (home.root / "runs").exists()


def test_show_of_a_sweep_that_does_not_exist_is_one_line_and_creates_nothing(cli, home) -> None:
    result = cli("sweep", "nothing", "--show")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: no sweep named 'nothing' in {home.root / 'sweeps' / 'nothing.journal'}; "
        "start one with `perfmode sweep NAME --trials N`"
    ]
    assert not (home.root / "sweeps").exists()
    result = cli("evaluate", "--checkpoint", "sweep:nothing")
    assert result.exit_code == 1 and "no sweep named 'nothing'" in result.stderr


def _dead_database() -> str:
    """A PostgreSQL URL where nothing listens: a database that is down."""
    return f"postgresql://me:secret@127.0.0.1:{_free_port()}/perfmode"


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    return lines[0]


@pytest.mark.parametrize("down", [False, True], ids=["bad-url", "database-down"])
def test_a_bad_storage_url_or_a_database_down_at_start_is_one_line_and_writes_nothing(
    cli, home, down: bool
) -> None:
    url = _dead_database() if down else "nosuchdb://me:secret@host/db"
    result = cli("sweep", "s", "--trials", "1", "--storage", url)
    assert result.exit_code == 1
    line = _one_error_line(result)
    masked = url.replace(":secret@", ":***@")
    assert line.startswith(f"Error: cannot open sweep storage {masked}: "), line
    assert ("Connection refused" if down else "nosuchdb") in line
    assert "secret" not in result.stderr + result.stdout
    assert list(home.root.iterdir()) == []


@pytest.mark.parametrize("show", [False, True], ids=["run", "show"])
def test_a_sweep_name_ending_in_a_newline_is_refused(cli, home, show: bool) -> None:
    args = ("--show",) if show else ("--trials", "1")
    result = cli("sweep", "x\n", *args, "--storage", _dead_database())
    assert result.exit_code == 2
    assert "sweep name 'x\\n' is not allowed" in _one_error_line(result)
    assert list(home.root.iterdir()) == []


def test_a_seeds_only_sweep_refuses_more_trials_than_seeds(cli, home) -> None:
    # Refused before the storage is opened (it is down here) and before anything runs.
    result = cli("sweep", "s", "--seeds", "3", "--trials", "4", "--storage", _dead_database())
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(
        "Error: --trials 4 is more than the 3 seeds of this seeds sweep"
    )
    assert list(home.root.iterdir()) == []


def test_a_seeds_only_sweep_runs_one_trial_per_seed_at_most() -> None:
    seeds = SweepConfig(seeds=3)  # trials: the default 20
    assert for_command(seeds).trials == 3
    assert for_command(seeds, trials=2).trials == 2
    assert for_command(SweepConfig(), seeds=4).trials == 4
    with pytest.raises(UsageError, match="--trials 4 is more than the 3 seeds"):
        for_command(seeds, trials=4)
    # With a space as well, the seed is one more thing searched: any number of trials.
    space = {"ppo.learning_rate": {"log_uniform": [1.0e-5, 1.0e-3]}}
    assert for_command(SweepConfig(seeds=3, space=space), trials=8).trials == 8


def test_show_names_each_trials_home_and_a_running_trials_steps_so_far(cli, home) -> None:
    import optuna

    from tests.sweepkit import journal

    (home.root / "sweeps").mkdir()
    study = optuna.create_study(study_name="lr", storage=journal(home, "lr"), direction="maximize")
    for state, run in (("COMPLETE", "sweep-lr-0"), ("RUNNING", "sweep-lr-1")):
        t = study.ask()
        t.suggest_float("ppo.learning_rate", 1e-5, 1e-3, log=True)
        attrs = {"run": run, "host": socket.gethostname(), "home": str(home.root)}
        for k, v in {**attrs, **({"steps": 512} if state == "COMPLETE" else {})}.items():
            t.set_user_attr(k, v)
        if state == "COMPLETE":
            study.tell(t, 0.05)
    # The running trial's trainer has written its progress; Optuna has no steps for it yet.
    home.make_run_dir("sweep-lr-1")
    home.status_file("sweep-lr-1").write_text(json.dumps({"timesteps": 300, "state": "running"}))
    result = cli("sweep", "lr", "--show")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.split(r"\s+", lines[1].strip())[:7] == [
        "#",
        "state",
        "value",
        "steps",
        "machine",
        "home",
        "params",
    ]
    done, running = (re.split(r"\s+", line.strip()) for line in lines[2:4])
    assert done[:3] == ["0", "complete", "5.00%"] and done[3] == "512"
    assert running[:4] == ["1", "running", "-", "300"]
    assert done[5] == running[5] and str(home.root).endswith(done[5].removeprefix("..."))
    doc = json.loads(cli("sweep", "lr", "--show", "--json").stdout)
    assert [r["steps"] for r in doc["trials"]] == [512, 300]


def test_the_storage_clock_counts_every_call_of_a_trial_in_its_own_thread(home) -> None:
    import threading

    import optuna

    from perfmode.sweep.storage import StorageClock, timed_storage
    from tests.sweepkit import journal

    (home.root / "sweeps").mkdir()
    clock = StorageClock()
    study = optuna.create_study(
        study_name="c", storage=timed_storage(journal(home, "c"), clock), direction="maximize"
    )
    calls: dict[str, int] = {}

    def one_trial(name: str) -> None:
        before = clock.now()[1]
        t = study.ask()  # one call: what the storage does inside it is not counted again
        after_ask = clock.now()[1]
        t.suggest_float("x", 0.0, 1.0)
        t.set_user_attr("run", name)
        t.report(0.5, 1)
        t.should_prune()
        study.tell(t, 1.0)
        calls[name] = clock.now()[1] - before
        calls[name + " ask"] = after_ask - before

    one_trial("main")
    other = threading.Thread(target=one_trial, args=("thread",))
    other.start()
    other.join()
    # ask, suggest, attribute, report, the pruner's read and tell: each counted, in its thread.
    assert calls["main"] == calls["thread"] >= 6 and calls["main ask"] == calls["thread ask"]
    assert clock.now()[0] > 0


def test_a_worker_stopped_by_an_error_leaves_it_in_the_result(home, monkeypatch) -> None:
    # What the command turns into its last line and exit code 1, instead of exiting 0.
    from perfmode.errors import PerfmodeError
    from perfmode.sweep.runner import Sweep, SweepOptions
    from perfmode.sweep.storage import where

    sweep = Sweep(home, Config(), where(home, "e", None), SweepOptions("e", 1, 64, jobs=2))

    def broken() -> int:
        raise PerfmodeError("sweep storage unreachable while trying to count trials: gone")

    monkeypatch.setattr(sweep.records, "counted", broken)
    result = sweep.run()
    assert result.error == "sweep storage unreachable while trying to count trials: gone"
    assert (result.ran, result.unrecorded) == (0, [])


def test_the_default_space_is_rl_zoos_and_fits_the_default_config() -> None:
    assert {"ppo.learning_rate", "ppo.n_steps", "ppo.batch_size", "ppo.gamma"} <= set(DEFAULT_SPACE)
    config = Config()
    assert config.sweep.effective_space() == DEFAULT_SPACE
    check_space_against(config)  # every end and choice trains


def test_a_seeds_sweep_gives_each_seed_once_and_keeps_the_hyperparameters(tmp_path: Path) -> None:
    import optuna

    config = load_config(_write(tmp_path, {"seeds": 4}))
    assert config.sweep.effective_space() == {}  # nothing sampled but the seed
    study = optuna.create_study(direction="maximize")
    for s in config.sweep.seed_list:
        study.enqueue_trial({"training.seed": s})
    configs = [
        trial_config(config, suggest(study.ask(), config.sweep), 512, None) for _ in range(4)
    ]
    assert sorted(c.training.seed for c in configs) == [0, 1, 2, 3]
    assert all(c.ppo == config.ppo for c in configs)
    assert all(c.training.total_timesteps == 512 and c.env.validation == 0.1 for c in configs)


def test_the_validation_part_sits_between_train_and_test_and_leaves_test_alone() -> None:
    plain = load_market(EnvConfig(synthetic_length=1000, window=8))
    held = load_market(EnvConfig(synthetic_length=1000, window=8, validation=0.1))
    assert plain.validation is None and "validation" not in plain.info
    assert np.array_equal(plain.test.close, held.test.close)  # test part unchanged
    assert len(held.train) == 700 and held.info["validation"]["rows"] == 100
    # Contiguous: validation starts right after training (its first window rows are train's).
    assert np.array_equal(held.validation.close[:8], held.train.close[-8:])
    assert held.validation.close[-1] == plain.test.close[7]
    with pytest.raises(UsageError, match="validation"):
        plain.part("validation")


def test_data_check_shows_the_validation_part(tmp_path: Path, cli) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("env:\n  validation: 0.1\n  synthetic_length: 1000\n")
    result = cli("data", "check", "synthetic", "--config", str(path))
    assert result.exit_code == 0, result.stderr
    assert "(800 rows), validation" not in result.stdout  # train lost the validation rows
    assert "train 2000-01-03 .. " in result.stdout and "(700 rows), validation " in result.stdout
    assert "(100 rows), test " in result.stdout


def test_data_check_shows_the_split_a_sweep_would_use(tmp_path: Path, cli) -> None:
    # No env.validation: train holds nothing out, but a sweep holds out sweep.validation.
    path = tmp_path / "s.yaml"
    path.write_text("env:\n  synthetic_length: 1000\nsweep:\n  validation: 0.2\n")
    result = cli("data", "check", "synthetic", "--config", str(path))
    assert result.exit_code == 0, result.stderr
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.splitlines())
    assert "validation" not in rows["Split 0.8"] and "(800 rows), test " in rows["Split 0.8"]
    sweep = rows["Sweep split"]
    assert "(600 rows), validation " in sweep and "(200 rows), test " in sweep
    assert sweep.endswith("(what `perfmode sweep` uses: sweep.validation 0.2)")
    # Without a config: the default sweep.validation, 10%; in JSON as well.
    result = cli("data", "check", "synthetic", "--json")
    doc = json.loads(result.stdout)
    assert doc["validation"] is None and doc["sweep_split"]["fraction"] == 0.1
    assert doc["sweep_split"]["validation"]["rows"] == 500
    assert doc["sweep_split"]["test"] == doc["test"]  # the test part is the same


def _trend_rule_return(market_kind: str, seed: int) -> tuple[float, float]:
    """(rule, buy-and-hold) test log returns of "long after ten up days on balance, short
    after ten down", after costs: a rule an MLP over the observation window can express."""
    w = 32
    m = load_market(EnvConfig(synthetic_market=market_kind, synthetic_seed=seed, window=w))
    z = m.test.features[:, 0]
    last_ten = np.convolve(z, np.ones(10))[: len(z)]
    ret = np.diff(np.log(m.test.close[w:]))
    pos = np.sign(last_ten[w:-1])
    cost = 0.001 * np.abs(np.diff(pos, prepend=0.0))
    return float(np.sum(pos * ret - cost)), float(np.sum(ret))


def test_the_cycles_market_has_a_structure_to_learn_and_the_random_walk_has_none() -> None:
    cycles = [_trend_rule_return("cycles", s) for s in range(3)]
    walks = [_trend_rule_return("random-walk", s) for s in range(3)]
    assert all(rule > max(1.0, hold + 0.5) for rule, hold in cycles), cycles
    assert all(rule < 0.5 for rule, _ in walks), walks
    # The default market is unchanged by the option.
    a = load_market(EnvConfig()).train.close
    assert np.array_equal(a, load_market(EnvConfig(synthetic_market="regimes")).train.close)
