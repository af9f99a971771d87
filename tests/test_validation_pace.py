"""A validation score steps through the whole validation part (tens of thousands of bars in
a real price file): the mode governs it as it governs training, and a stop does not wait
for its end."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from perfmode.base.home import Home
from perfmode.env import TradingEnv
from perfmode.governor.governor import Governor
from perfmode.training import validation
from perfmode.training.trainer import train
from tests.trainkit import tiny_config


@pytest.fixture
def scoring(tmp_path: Path):
    # 800 bars, a fifth of them validation: ~150 steps a score, one every 256 steps.
    return tiny_config(
        tmp_path, env={"validation": 0.2}, training={"validate_every": 256, "poll_interval": 0.05}
    )


class Counter:
    """Governor ticks while a score is being computed, and the scores computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scoring, self.ticks, self.steps, self.scores = False, [], [], []
        score, tick, step = validation.validation_return, Governor.tick, TradingEnv.step

        def counted_score(*args, **kwargs):
            self.scoring, self.ticks, self.steps = True, [*self.ticks, 0], [*self.steps, 0]
            try:
                value = score(*args, **kwargs)
            finally:
                self.scoring = False
            self.scores.append(value)
            return value

        def counted_tick(gov: Governor) -> None:
            if self.scoring:
                self.ticks[-1] += 1
                self.on_scoring_tick(len(self.ticks), self.ticks[-1])
            tick(gov)

        def counted_step(env: TradingEnv, action):
            if self.scoring:
                self.steps[-1] += 1
            return step(env, action)

        monkeypatch.setattr(TradingEnv, "step", counted_step)
        monkeypatch.setattr(validation, "validation_return", counted_score)
        monkeypatch.setattr(Governor, "tick", counted_tick)

    def on_scoring_tick(self, score: int, tick: int) -> None:
        pass


def test_the_governor_ticks_at_every_step_of_a_score(
    home: Home, scoring, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = Counter(monkeypatch)
    train(scoring, home)
    assert len(counter.scores) >= 4 and None not in counter.scores
    # One tick per step of the policy through the validation part, as in training.
    assert counter.ticks == counter.steps and min(counter.steps) > 100, counter.ticks


def test_a_stop_during_a_score_gives_it_up_at_once(
    home: Home, scoring, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = Counter(monkeypatch)

    def ctrl_c_in_the_second_score(score: int, tick: int) -> None:
        if score == 2 and tick == 10:
            signal.raise_signal(signal.SIGINT)  # the trainer's handler: stop at a safe point

    counter.on_scoring_tick = ctrl_c_in_the_second_score
    result = train(scoring, home)
    assert result.stopped_early
    assert counter.scores[1] is None and counter.ticks[1] == 10, counter.ticks
    written = json.loads((home.run_dir("default") / validation.VALIDATION_FILE).read_text())
    # The score given up is not written: the one before it is the last.
    assert [r["timesteps"] for r in written["reports"]] == [256]
    assert written["final"] is None
