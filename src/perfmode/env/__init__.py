"""The trading environment: prices in (CSV or synthetic), a gymnasium env out.

A price file's layout is learnt first (``csvformats``), its stamps read in one layout
(``dates``, ``stampparse``, ``timecolumn``), its closes and stamps read chunk by chunk
(``pricefile``) and summed up for ``perfmode data check`` (``summary``, ``timeaxis``);
``data`` turns them, or the seeded synthetic series (``synthetic``), into the parts a run
trains and is scored on; ``features`` is what the agent sees; ``trading_env`` is the env
and ``vec_env`` steps several together.

``from perfmode.env import EnvConfig, Market, load_market, TradingEnv``. The config part is
light; the rest (numpy, pandas, gymnasium: about half a second) loads on first use, so
reading a config, or refusing a bad one, stays quick.

May import: errors, base, config, settings, schedule, checkpoint.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from perfmode.config.env import EnvConfig, load_env_config

if TYPE_CHECKING:
    from perfmode.env.data import Market, Series, load_market
    from perfmode.env.trading_env import TradingEnv, observation_size

_LAZY = {
    "Market": "perfmode.env.data",
    "Series": "perfmode.env.data",
    "load_market": "perfmode.env.data",
    "TradingEnv": "perfmode.env.trading_env",
    "observation_size": "perfmode.env.trading_env",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EnvConfig",
    "Market",
    "Series",
    "TradingEnv",
    "load_env_config",
    "load_market",
    "observation_size",
]
