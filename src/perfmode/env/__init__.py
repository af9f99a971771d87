"""The trading environment: prices in (CSV or synthetic), a gymnasium env out.

``from perfmode.env import EnvConfig, Market, load_market, TradingEnv``; importing this
package pulls in numpy, pandas and gymnasium, so command modules import it lazily.
"""

from perfmode.env.config import EnvConfig, load_env_config
from perfmode.env.data import Market, Series, load_market
from perfmode.env.trading_env import TradingEnv, observation_size

__all__ = [
    "EnvConfig",
    "Market",
    "Series",
    "TradingEnv",
    "load_env_config",
    "load_market",
    "observation_size",
]
