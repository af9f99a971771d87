"""The one error a checkpoint's parts raise: a part is missing, unreadable or out of range."""

from __future__ import annotations

from perfmode.errors import PerfmodeError


class DamagedCheckpoint(PerfmodeError):
    """A part of a checkpoint is missing, truncated or not what it claims to be."""
