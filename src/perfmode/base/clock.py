"""Times as the home's files hold them (ISO 8601, UTC) and as people read them.

Every stamp here comes from a file anyone can edit: parsing never raises, and a stamp in
the future is something to say, not to trust.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# A stamp this far ahead of the clock is not mtime granularity or a slewing clock: the
# clock was set back since it was written, or someone typed it.
FUTURE_TOLERANCE_S = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string; None for anything else or out of range."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC from here on: "9999-12-31T23:59-05:00" exists but is past year 9999 in UTC,
        # and would overflow at the first comparison or format.
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def from_timestamp(ts: float) -> datetime | None:
    """A file's mtime as a datetime; None for one outside what datetime can hold."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def in_future(t: datetime, now: datetime | None = None) -> bool:
    return (t - (now or utc_now())).total_seconds() > FUTURE_TOLERANCE_S


def human_span(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.5 h``, ``2.0 days``: for people, not for parsing."""
    s = abs(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def local_time(t: datetime) -> str:
    """``2026-11-26 21:04:10 CET`` (local time); the UTC stamp where local time cannot hold it."""
    try:
        return t.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except (ValueError, OverflowError):
        return format_time(t)


def when(t: datetime | None, now: datetime | None = None) -> str:
    """``at <local time>, 3 s ago``; a stamp in the future says so instead of ``0 s ago``."""
    return f"at {since(t, now)}"


def since(t: datetime | None, now: datetime | None = None) -> str:
    """``<local time>, 3 s ago`` (``when`` without its ``at``)."""
    if t is None:
        return "an unknown time"
    now = now or utc_now()
    delta = (now - t).total_seconds()
    if in_future(t, now):
        return f"{local_time(t)}, {human_span(delta)} in the future (check the clock)"
    return f"{local_time(t)}, {human_span(max(delta, 0))} ago"
