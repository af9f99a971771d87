"""What the agent sees of the price history: a few scale-free features per row.

Everything is causal (row t uses prices up to t only) and computed once over the whole
series before the train/test split, so the first test observations carry real history.
Features are in units of recent volatility, so one model fits daily and intraday data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = ("return_z", "trend", "vol_ratio")
"""Per row: the log return over recent volatility; the log distance of the price from its
slow moving average, in the same units; the log ratio of short to long volatility."""

CLIP = 10.0
"""Every feature is clipped to +-CLIP, which is also the observation space's bound."""

_FAST_SPAN = 20
_SLOW_SPAN = 100
_TREND_SPAN = 64
_MIN_VOL = 1e-8


def feature_table(close: np.ndarray) -> np.ndarray:
    """A float32 array of shape ``(len(close), len(FEATURES))``, C-contiguous."""
    price = pd.Series(np.asarray(close, dtype=np.float64))
    logp = np.log(price)
    ret = logp.diff().fillna(0.0)
    # Volatility known *before* row t, so a jump at t shows in full in its own z-score.
    fast = np.sqrt((ret**2).ewm(span=_FAST_SPAN).mean()).shift(1)
    slow = np.sqrt((ret**2).ewm(span=_SLOW_SPAN).mean()).shift(1)
    fast_v = np.maximum(fast.fillna(0.0).to_numpy(), _MIN_VOL)
    slow_v = np.maximum(slow.fillna(0.0).to_numpy(), _MIN_VOL)

    return_z = ret.to_numpy() / fast_v
    # A random walk strays about sqrt(span/2) steps' volatility from its moving average.
    trend_gap = (logp - logp.ewm(span=_TREND_SPAN).mean()).to_numpy()
    trend = trend_gap / (fast_v * np.sqrt(_TREND_SPAN / 2))
    vol_ratio = np.log(fast_v / slow_v)

    table = np.stack([return_z, trend, vol_ratio], axis=1)
    # Rows without history (constant prices, the first rows) give 0, not a spike.
    table[~np.isfinite(table)] = 0.0
    np.clip(table, -CLIP, CLIP, out=table)
    return np.ascontiguousarray(table, dtype=np.float32)
