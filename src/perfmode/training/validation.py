"""Scores on the validation part while a run trains: the run's ``validation.json``.

``training.validate_every`` asks for one every so many timesteps and one at the end. A score
is the total return of the current policy trading the validation part deterministically,
observations normalised with the training statistics as they are (nothing updates them), in
an env of its own: the training envs, the model and every random stream are untouched, so a
run learns the same with or without scores. ``perfmode sweep`` reads the file to report a
trial's progress and result; the trainer itself knows nothing of sweeps.

A score steps through the whole validation part (tens of thousands of bars in a real price
file): the governor ticks at each of its steps as at a training step, so quiet's share,
paused and a switch apply during it too, and a stop gives it up (no score for that step
count) instead of waiting for its end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from perfmode.base.fsutil import atomic_write_json
from perfmode.config.schema import Config
from perfmode.env import Market, TradingEnv
from perfmode.status.file import read_json_object

log = logging.getLogger("perfmode.train")

VALIDATION_FILE = "validation.json"


class Pace:
    """How a score shares the trainer with the governor: ``tick`` at every step, and
    ``stopped`` says when to give the score up."""

    def __init__(
        self,
        tick: Callable[[], None] = lambda: None,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self.tick, self.stopped = tick, stopped


def validation_return(
    model: Any, venv: Any, market: Market, config: Config, pace: Pace | None = None
) -> float | None:
    """Total return of ``model``'s deterministic policy over the validation part, traded as
    ``perfmode evaluate`` trades the test part (a drawdown stop closes the position); None
    when ``pace`` said stop before the end."""
    pace = pace or Pace()
    series = market.part("validation")
    env = TradingEnv(series, config.env.replace(episode_length=None))
    normalize = getattr(venv, "normalize_obs", None) if config.training.normalize else None
    obs, _ = env.reset(seed=0, options={"start": env.cfg.window})
    start = env.equity
    for _ in range(len(series) - 1 - env.cfg.window):
        pace.tick()
        if pace.stopped():
            return None
        x = normalize(obs[None, :]) if normalize is not None else obs[None, :]
        action, _ = model.policy.predict(x, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(int(np.asarray(action).reshape(-1)[0]))
        if terminated:
            return float(
                env.equity * (1.0 - env.cfg.transaction_cost * abs(env.position)) / start - 1.0
            )
        if truncated:
            break
    return float(env.equity / start - 1.0)


class ValidationReports:
    """Appends scores to ``RUN/validation.json`` (atomic replace: a reader sees whole files)."""

    def __init__(
        self, run_dir: Path, config: Config, start_timesteps: int, pace: Pace | None = None
    ) -> None:
        self.pace = pace or Pace()
        self.path = run_dir / VALIDATION_FILE
        self.every = config.training.validate_every
        self.config = config
        old = read_json_object(self.path) or {}
        reports = old.get("reports") if isinstance(old.get("reports"), list) else []
        # A resume redoes the steps after its checkpoint: their scores are redone too.
        self.reports: list[dict[str, Any]] = [
            r
            for r in reports
            if isinstance(r, dict)
            and isinstance(r.get("timesteps"), int)
            and r["timesteps"] <= start_timesteps
        ]
        self.final: dict[str, Any] | None = None
        self._next = (start_timesteps // self.every + 1) * self.every if self.every else 0

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def at_boundary(self, model: Any, venv: Any, market: Market) -> None:
        if not self.enabled or model.num_timesteps < self._next:
            return
        if self._report(model, venv, market):
            self._next = (model.num_timesteps // self.every + 1) * self.every

    def at_finish(self, model: Any, venv: Any, market: Market) -> None:
        if not self.enabled:
            return
        if not self.reports or self.reports[-1]["timesteps"] != model.num_timesteps:
            self._report(model, venv, market)
        if self.reports and self.reports[-1]["timesteps"] == model.num_timesteps:
            self.final = self.reports[-1]
        self._write()

    def _report(self, model: Any, venv: Any, market: Market) -> bool:
        """Score now and write it; False when a stop came first (nothing written)."""
        value = validation_return(model, venv, market, self.config, self.pace)
        if value is None:
            return False
        self.reports.append(
            {
                "report": model.num_timesteps // self.every,
                "timesteps": model.num_timesteps,
                "return": round(value, 10),
            }
        )
        self._write()
        return True

    def _write(self) -> None:
        # A full disk must not stop training: the checkpoint write reports that one.
        with contextlib.suppress(OSError):
            atomic_write_json(
                self.path, {"every": self.every, "reports": self.reports, "final": self.final}
            )


class ValidatingCallback(BaseCallback):
    """Scores at rollout boundaries (after the update, before the checkpoint)."""

    def __init__(self, reports: ValidationReports, venv: Any, market: Market) -> None:
        super().__init__()
        self.reports, self.venv, self.market = reports, venv, market

    def _on_rollout_start(self) -> None:
        self.reports.at_boundary(self.model, self.venv, self.market)

    def _on_step(self) -> bool:
        return True

    def at_finish(self, model: Any) -> None:
        self.reports.at_finish(model, self.venv, self.market)
