"""One asset, one position: the gymnasium environment the agents learn in.

Accounting. The position is a fraction of equity held in the asset (negative: short), kept
at that fraction until the agent changes it; the drift of that fraction between decisions
is not charged. A decision at row t trades at the close of t and holds until the close
of t+1:

    equity *= 1 - transaction_cost * |new_position - old_position|
    equity *= 1 + new_position * (close[t+1] / close[t] - 1)
    reward  = log(equity after) - log(equity before)

so the rewards of an episode add up to the log of its final equity. Holding a position of
1 tracks the asset exactly: its rewards are the asset's log returns.

Speed matters more than elegance in :meth:`TradingEnv.step` (it runs millions of times):
it works on Python floats and precomputed arrays, and allocates only the observation.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perfmode.config.env import EnvConfig
from perfmode.env.data import Series
from perfmode.env.features import CLIP, FEATURES
from perfmode.errors import UsageError

EXTRA_OBS = ("position", "unrealised_pnl", "drawdown")
"""What follows the feature window in each observation: the position over
``max_position_size`` (-1..1), the log return of equity since the position was last changed,
and the current fall from peak equity (0..1)."""

# Equity never reaches zero: a position above 1x on a crash would make it negative, and
# the drawdown limit ends the episode there anyway.
_MIN_GROWTH = 1e-9


def observation_size(window: int) -> int:
    return window * len(FEATURES) + len(EXTRA_OBS)


class TradingEnv(gym.Env[np.ndarray, np.int64]):
    """Trade one asset over ``series`` under the limits in ``cfg``.

    Actions are indices into ``position_levels`` evenly spaced target positions from
    ``-max_position_size`` to ``+max_position_size`` (0: short, middle: flat, last: long).
    ``reset(options={"start": row})`` starts at a chosen row instead of a random one.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (gymnasium's API)

    def __init__(self, series: Series, cfg: EnvConfig) -> None:
        super().__init__()
        w = cfg.window
        n = len(series)
        if n < w + 2:
            raise UsageError(
                f"price series has {n} rows; window {w} needs at least {w + 2} to take a step"
            )
        self.series = series
        self.cfg = cfg
        self.levels = np.linspace(-1.0, 1.0, cfg.position_levels) * cfg.max_position_size
        self.flat_action = cfg.position_levels // 2
        self.action_space = spaces.Discrete(cfg.position_levels)
        self.observation_space = spaces.Box(
            low=-CLIP, high=CLIP, shape=(observation_size(w),), dtype=np.float32
        )
        close = np.asarray(series.close, dtype=np.float64)
        # Python floats and lists: scalar arithmetic on them is several times faster than on
        # numpy scalars, and step() is nothing but scalar arithmetic.
        self._ret: list[float] = (close[1:] / close[:-1] - 1.0).tolist()
        self._flat_features = np.ascontiguousarray(series.features, dtype=np.float32).ravel()
        self._n_feat = len(FEATURES)
        self._levels: list[float] = self.levels.tolist()
        self._inv_max = 1.0 / cfg.max_position_size
        self._cost = cfg.transaction_cost
        self._max_dd = cfg.max_drawdown
        self._first = w  # rows before it only feed the first observation
        self._last = n - 1  # no step can start here: there is no next close
        self._length = cfg.episode_length
        self._obs_size = observation_size(w)
        self._feat_span = w * self._n_feat
        self._t = self._first
        self._end = self._last
        self._pos = 0.0
        self._equity = 1.0
        self._peak = 1.0
        self._entry = 1.0

    # Read-only state, for evaluation and logging.
    @property
    def t(self) -> int:
        """The current row: the next action trades at its close."""
        return self._t

    @property
    def position(self) -> float:
        return self._pos

    @property
    def equity(self) -> float:
        return self._equity

    @property
    def drawdown(self) -> float:
        return 1.0 - self._equity / self._peak

    def get_state(self) -> dict[str, Any]:
        """Where the episode stands, as JSON-able data (the generator is saved separately)."""
        return {
            "t": self._t,
            "end": self._end,
            "position": self._pos,
            "equity": self._equity,
            "peak": self._peak,
            "entry": self._entry,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue the episode :meth:`get_state` described; ValueError if it cannot be."""
        try:
            t, end = state["t"], state["end"]
            floats = [float(state[k]) for k in ("position", "equity", "peak", "entry")]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an episode state ({e!r})") from None
        ints_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (t, end))
        if not (ints_ok and self._first <= t <= end <= self._last):
            raise ValueError(f"rows t={t!r}, end={end!r} are outside this data")
        if not all(math.isfinite(v) for v in floats) or min(floats[1:]) <= 0.0:
            raise ValueError("position and equity must be finite, equity positive")
        self._t, self._end = t, end
        self._pos, self._equity, self._peak, self._entry = floats

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        start = (options or {}).get("start")
        if start is None:
            start = self._random_start()
        elif not self._first <= int(start) < self._last:
            raise ValueError(f"start row {start} is outside {self._first}..{self._last - 1}")
        self._t = int(start)
        self._end = self._last if self._length is None else min(self._last, self._t + self._length)
        self._pos = 0.0
        self._equity = self._peak = self._entry = 1.0
        return self._observation(), {}

    def _random_start(self) -> int:
        if self._length is None:
            return self._first
        # Leave room for a full episode when the data allows it; a short series just gives
        # episodes that end with the data.
        latest = max(self._first, self._last - self._length)
        return int(self.np_random.integers(self._first, latest + 1))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if a < 0 or a >= len(self._levels):
            raise ValueError(f"action {action!r} is not in 0..{len(self._levels) - 1}")
        target = self._levels[a]
        before = self._equity
        equity = before
        change = target - self._pos
        if change != 0.0:
            equity *= 1.0 - self._cost * abs(change)
            self._pos = target
            self._entry = equity
        growth = 1.0 + target * self._ret[self._t]
        equity *= growth if growth > _MIN_GROWTH else _MIN_GROWTH
        self._equity = equity
        if equity > self._peak:
            self._peak = equity
        self._t += 1
        terminated = 1.0 - equity / self._peak >= self._max_dd
        truncated = not terminated and self._t >= self._end
        return self._observation(), math.log(equity / before), terminated, truncated, {}

    def _observation(self) -> np.ndarray:
        obs = np.empty(self._obs_size, dtype=np.float32)
        hi = (self._t + 1) * self._n_feat
        obs[: self._feat_span] = self._flat_features[hi - self._feat_span : hi]
        pnl = math.log(self._equity / self._entry)
        obs[self._feat_span :] = (
            self._pos * self._inv_max,
            -CLIP if pnl < -CLIP else CLIP if pnl > CLIP else pnl,
            1.0 - self._equity / self._peak,
        )
        return obs
