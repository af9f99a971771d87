"""Seconds read from an environment variable: the default when unset, one line when wrong."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

from perfmode.errors import UsageError


def env_seconds(
    name: str,
    default: float,
    valid: Callable[[float], bool],
    hint: str,
    env: Mapping[str, str] | None = None,
) -> float:
    """``$name`` as seconds, or ``default`` when it is unset or empty. A value that is no
    number, or that ``valid`` refuses, is a ``UsageError`` naming it and saying ``hint``."""
    raw = (env if env is not None else os.environ).get(name)
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan  # fails every range check
    if not valid(seconds):
        raise UsageError(f"{name}={raw!r}: {hint}")
    return seconds
