"""The built-in price series, seeded, so a demo or a sweep needs no files.

Three markets (``env.synthetic_market``):

- ``regimes`` (the default): geometric Brownian motion whose drift and volatility switch
  between a few regimes (a Markov chain that stays in a regime for ~100 days on average),
  with fat-tailed (Student-t) daily shocks: trends, calm and turbulent stretches, crashes.
  When a regime ends cannot be foreseen, so there is little an agent can learn from it.
- ``cycles``: a learnable structure. The daily drift swings like a sine wave, up for 30 to
  60 days and down for as long (each cycle's length drawn from 60 to 120 days), at
  ±0.4% a day under 1% daily noise. Where the swing is shows in the sum of the last ten or so
  returns (the ``return_z`` features of the window), so a policy that follows it beats both flat
  and buy-and-hold, after costs, on data it never saw.
- ``random-walk``: the same noise with no drift at all, the control: nothing learned there
  beats flat except by luck.
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


CYCLE_DAYS = (60, 120)
"""Shortest and longest cycle of the ``cycles`` market (one up swing and one down swing)."""
CYCLE_DRIFT = 0.004
"""Peak daily drift of a swing (0.4%)."""
CYCLE_NOISE = 0.01
"""Daily noise of ``cycles`` and ``random-walk`` (1%)."""


def synthetic_prices(
    length: int, seed: int, market: str = "regimes"
) -> tuple[np.ndarray, np.ndarray]:
    """``length`` closes (float64) and their business-day timestamps (datetime64[ns])."""
    rng = np.random.default_rng(seed)
    if market == "regimes":
        log_ret = _regime_returns(length, rng)
    elif market == "cycles":
        log_ret = _cycle_drift(length, rng) + CYCLE_NOISE * rng.standard_normal(length)
    elif market == "random-walk":
        log_ret = CYCLE_NOISE * rng.standard_normal(length)
    else:
        raise ValueError(f"unknown synthetic market {market!r}")
    log_ret[0] = 0.0
    close = START_PRICE * np.exp(np.cumsum(log_ret))
    time = np.busday_offset(np.datetime64(START_DATE, "D"), np.arange(length), roll="forward")
    return close, time.astype("datetime64[ns]")


def _regime_returns(length: int, rng: np.random.Generator) -> np.ndarray:
    regimes = _regime_path(length, rng)
    mu, sigma = _REGIMES[regimes, 0] / _DAYS, _REGIMES[regimes, 1] / _DAYS**0.5
    # Student-t scaled to unit variance keeps sigma meaning what it says.
    shocks = rng.standard_t(_T_DOF, size=length) * np.sqrt((_T_DOF - 2) / _T_DOF)
    return mu - 0.5 * sigma**2 + sigma * shocks


def _cycle_drift(length: int, rng: np.random.Generator) -> np.ndarray:
    # Whole cycles of random length laid end to end: regular enough to learn, not so regular
    # that counting days since the start would do.
    phase = np.empty(length)
    i = 0
    while i < length:
        days = int(rng.integers(CYCLE_DAYS[0], CYCLE_DAYS[1] + 1))
        n = min(days, length - i)
        phase[i : i + n] = 2 * np.pi * np.arange(n) / days
        i += n
    return CYCLE_DRIFT * np.sin(phase)


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
