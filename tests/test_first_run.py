"""The first hour in a new home: nothing looks broken, nothing is said twice or wrongly."""

from __future__ import annotations

import json
import logging
import re
import signal
import zipfile
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.config.schema import load_config
from perfmode.settings.store import SettingsStore
from perfmode.training.callbacks import CheckpointingCallback
from perfmode.training.governed import GovernedPPO
from perfmode.training.trainer import train
from tests.conftest import run_perfmode
from tests.test_cli_conventions import one_line_error
from tests.test_trainprogress import ANSI
from tests.trainkit import metrics_rows, write_config


def test_status_in_a_new_home_shows_the_default_without_a_problem(cli, home: Home) -> None:
    human = cli("status")
    assert human.exit_code == 0, human.output
    assert "Requested mode  quiet (default; no settings.json yet)\n" in human.stdout
    assert "PROBLEM" not in human.output and "⚠️" not in human.output
    report = json.loads(cli("status", "--json").stdout)
    assert report["settings_missing"] is True
    assert (report["settings_ok"], report["settings_problem"]) == (True, None)
    assert list(home.root.iterdir()) == []  # a read writes nothing


def test_first_training_run_in_a_home_that_does_not_exist_yet(tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    new_home = tmp_path / "not" / "yet"
    proc = run_perfmode(
        "train", "--config", str(config), "--home", str(new_home), "--timesteps", "1000",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = proc.stderr
    assert "⚠️" not in log and "Warning" not in log
    mode = "⚙️ Performance mode: quiet (batch 32, epochs 2, threads 1, cpu 50%)"
    assert f"{mode} — default; no settings.json yet\n" in log
    # The rollout is 64 steps × 2 envs: 1,000 becomes 1,024, said before training starts.
    target = (
        "🎯 Target: 1,024 steps (1,000 rounded up to whole rollouts of 128 = n_steps 64 × 2 envs)"
    )
    assert log.index(target) < log.index("💾 Checkpoint at 256 steps")
    assert "✅ Finished: 1,024 steps (target 1,024)" in log
    # Not a terminal: plain progress lines, no bar, no terminal codes.
    assert not ANSI.search(log) and "\r" not in log
    progress = [line for line in log.splitlines() if line.startswith("⏳")]
    # One line per 10% at most; the trainer's polls (every 0.2 s) may skip some marks of a run
    # this short, never all of them.
    assert 1 <= len(progress) <= 10, log
    for line in progress:
        assert re.fullmatch(
            r"⏳ [\d,]+ / 1,024 steps \(\d+\.\d%\), ([\d,]+|\?) steps/s, quiet, ETA (\d+ \w+|\?)",
            line,
        ), line
    assert (new_home / "runs" / "default" / "checkpoints" / "step_0000001024").is_dir()
    status = run_perfmode("status", "--home", str(new_home))
    assert status.returncode == 0 and status.stderr == ""
    assert "quiet (default; no settings.json yet)" in status.stdout


def test_set_creates_a_missing_home_silently(tmp_path: Path) -> None:
    new_home = tmp_path / "a" / "b"
    proc = run_perfmode("set", "performance", "--home", str(new_home))
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads((new_home / "settings.json").read_text())["performance_mode"] == "performance"


@pytest.mark.parametrize(
    "args", [["status"], ["status", "--json"], ["evaluate", "--checkpoint", "latest"]]
)
def test_read_commands_say_the_home_does_not_exist(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "typo"
    proc = run_perfmode(*args, "--home", str(missing))
    assert proc.returncode == 2
    one_line_error(proc.stderr, f"home folder {missing} does not exist")
    assert proc.stdout == "" and not missing.exists()


def test_schedule_clear_says_one_thing(cli, home: Home) -> None:
    nothing = cli("schedule", "--clear")
    assert nothing.exit_code == 0
    assert nothing.output == "No schedule to clear.\n"
    cli("schedule", "--night", "18:00", "--day", "08:00", "--tz", "UTC", "--save-only")
    cleared = cli("schedule", "--clear")
    assert cleared.exit_code == 0
    assert cleared.output == "Schedule cleared.\n"


def test_status_does_not_promise_a_switch_that_no_daemon_will_make(cli, home: Home) -> None:
    cli("schedule", "--night", "18:00", "--day", "08:00", "--tz", "UTC", "--save-only")
    for args, label in ((["status"], "Next switch"), (["schedule", "--show"], "Next switches")):
        lines = cli(*args).stdout.splitlines()
        nxt = next(line for line in lines if line.startswith(label))
        assert "none while no daemon runs" in nxt and "start one: perfmode schedule" in nxt
        assert "(in " not in "\n".join(lines)


def test_a_file_that_is_no_model_is_one_line_without_nested_errors(cli, tmp_path: Path) -> None:
    picture = tmp_path / "pic.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    result = cli("evaluate", "--checkpoint", str(picture))
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{picture} is not a Stable-Baselines3 model")
    some_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(some_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    result = cli("evaluate", "--checkpoint", str(some_zip))
    assert result.exit_code == 1
    # After the data's summary line: one error, its reason not wrapped in another "Error:".
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].count("Error") == 1, result.stderr
    assert errors[0].startswith(f"Error: {some_zip}: cannot load it as a Stable-Baselines3 PPO")


def test_plot_must_be_a_png_name(cli, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    result = cli("evaluate", "--baseline", "flat", "--plot", str(out))
    assert result.exit_code == 2
    one_line_error(result.stderr, f"--plot {out}", ".png")
    assert result.stdout == "" and not out.exists()


def test_a_missing_config_file_is_not_answered_with_pass_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = run_perfmode("train", "--config", str(missing), "--home", str(tmp_path))
    assert proc.returncode == 2
    line = one_line_error(proc.stderr, f"config file {missing} does not exist")
    assert "pass --config" not in line


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def train_log():
    logger = logging.getLogger("perfmode.train")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_stop_right_after_a_periodic_save_logs_that_checkpoint_once(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_log: list[str]
) -> None:
    config = load_config(write_config(tmp_path / "tiny.yaml", training={"checkpoint_freq": 256}))
    submit = CheckpointingCallback.save_in_background

    def save_then_ctrl_c(self: CheckpointingCallback, state):
        # Ctrl-C as the periodic save starts: whether its background write has landed when
        # the stop is handled depends on the machine, the outcome must not.
        submit(self, state)
        if state.num_timesteps == 512:
            signal.raise_signal(signal.SIGINT)  # the trainer's handler: stop at the next safe point

    monkeypatch.setattr(CheckpointingCallback, "save_in_background", save_then_ctrl_c)
    result = train(config, home)
    assert result.stopped_early and result.timesteps == 512
    saves = [line for line in train_log if line.startswith("💾")]
    assert [s.split(":")[0] for s in saves] == [
        "💾 Checkpoint at 256 steps",
        "💾 Checkpoint at 512 steps",
    ]
    assert result.checkpoint == home.checkpoints_dir() / "step_0000000512"


def test_metrics_rows_describe_the_update_they_measured(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(
        write_config(
            tmp_path / "tiny.yaml",
            training={"total_timesteps": 768, "poll_interval": 0.05},
            modes={"performance": {"batch_size_multiplier": 2.0, "epochs_multiplier": 1.5}},
        )
    )
    store = SettingsStore(home.settings)
    store.set_mode("quiet", changed_by="cli")
    updates = 0
    update = GovernedPPO.train

    def switch_during_the_third_update(self: GovernedPPO) -> None:
        nonlocal updates
        updates += 1
        if updates == 3:
            # `perfmode set` landing mid-update: seen at the first optimizer step's poll.
            store.set_mode("performance", changed_by="cli")
            import time

            time.sleep(0.1)
        update(self)

    monkeypatch.setattr(GovernedPPO, "train", switch_during_the_third_update)
    train(config, home)
    rows = [(r["mode"], r["batch_size"], r["n_epochs"]) for r in metrics_rows(home)]
    quiet, performance = ("quiet", "32", "2"), ("performance", "64", "3")
    # Update 3 ran with quiet's batch and epochs (they change between updates only); the
    # mode switched under it, but its row describes the update as it ran.
    assert rows == [quiet, quiet, quiet, performance, performance, performance]
