"""perfmode: long PPO training runs whose resource use follows a live quiet/performance mode."""

from perfmode.errors import PerfmodeError

__all__ = ["PerfmodeError"]
__version__ = "0.1.0"
