"""The built-in price series: a seeded random market with regimes, so a demo needs no files.

Geometric Brownian motion whose drift and volatility switch between a few regimes (a
Markov chain that stays in a regime for ~100 days on average), with fat-tailed (Student-t)
daily shocks. That gives trends to follow, calm and turbulent stretches and crashes, which
a flat random walk would not, while staying reproducible from one seed.
"""

from __future__ import annotations

import numpy as np

START_DATE = "2000-01-03"
"""The first synthetic row; rows are business days (Mon-Fri), so metrics use 252 per year."""

START_PRICE = 100.0

# (annual drift, annual volatility) per regime: bull, calm sideways, bear, crash.
_REGIMES = np.array([(0.18, 0.14), (0.02, 0.10), (-0.20, 0.28), (-0.60, 0.55)])
# Row i: chance of moving to each regime on a given day.
_SWITCH = np.array(
    [
        [0.990, 0.006, 0.003, 0.001],
        [0.007, 0.990, 0.002, 0.001],
        [0.006, 0.004, 0.985, 0.005],
        [0.010, 0.000, 0.030, 0.960],
    ]
)
_DAYS = 252
_T_DOF = 4


def synthetic_prices(length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``length`` closes (float64) and their business-day timestamps (datetime64[ns])."""
    rng = np.random.default_rng(seed)
    regimes = _regime_path(length, rng)
    mu, sigma = _REGIMES[regimes, 0] / _DAYS, _REGIMES[regimes, 1] / _DAYS**0.5
    # Student-t scaled to unit variance keeps sigma meaning what it says.
    shocks = rng.standard_t(_T_DOF, size=length) * np.sqrt((_T_DOF - 2) / _T_DOF)
    log_ret = mu - 0.5 * sigma**2 + sigma * shocks
    log_ret[0] = 0.0
    close = START_PRICE * np.exp(np.cumsum(log_ret))
    time = np.busday_offset(np.datetime64(START_DATE, "D"), np.arange(length), roll="forward")
    return close, time.astype("datetime64[ns]")


def _regime_path(length: int, rng: np.random.Generator) -> np.ndarray:
    # Draw how long each regime lasts (geometric) and where it goes next, rather than a
    # per-day loop: ~length/100 iterations instead of length.
    stay = np.diag(_SWITCH)
    path = np.empty(length, dtype=np.int64)
    state, i = 0, 0
    while i < length:
        run = int(rng.geometric(1.0 - stay[state]))
        path[i : i + run] = state
        i += run
        leave = _SWITCH[state].copy()
        leave[state] = 0.0
        state = int(rng.choice(len(leave), p=leave / leave.sum()))
    return path
