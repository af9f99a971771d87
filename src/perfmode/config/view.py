"""The effective config key by key, each value with where it came from.

``perfmode config show`` prints it (like ``git config --show-origin``) and ``perfmode train``
logs, once at start, the file it loaded and every value that differs from the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from perfmode.config.schema import Config, LoadedConfig
from perfmode.config.sections import flatten, to_mapping

DEFAULT = "default"


@dataclass(frozen=True)
class Setting:
    key: str
    """Dotted, as in messages: ``modes.performance.cpu_share``."""
    value: Any
    default: Any
    origin: str
    """``default``, ``FILE:LINE`` where the file sets it, or the command-line flag that did."""

    @property
    def differs(self) -> bool:
        return self.value != self.default


def settings_of(
    loaded: LoadedConfig, config: Config | None = None, flags: Mapping[str, str] | None = None
) -> list[Setting]:
    """Every leaf of ``config`` (default: the loaded one) in file order, with its origin.

    ``flags`` names the command-line flag that set a key (``{"training.seed": "--seed"}``).
    """
    values = flatten(to_mapping(config if config is not None else loaded.config))
    defaults = flatten(to_mapping(Config()))
    flags = flags or {}
    out = []
    for key, value in values.items():
        origin = flags.get(key) or loaded.origin(key) or DEFAULT
        out.append(Setting(key, value, defaults.get(key), origin))
    return out


def show_lines(settings: list[Setting]) -> list[str]:
    """``ORIGIN  key = value`` per setting, values that differ followed by the default."""
    width = max((len(s.origin) for s in settings), default=0)
    lines = []
    for s in settings:
        line = f"{s.origin:<{width}}  {s.key} = {format_value(s.value)}"
        if s.differs:
            line += f"  (default: {format_value(s.default)})"
        lines.append(line)
    return lines


def startup_lines(loaded: LoadedConfig, settings: list[Setting]) -> list[str]:
    """What ``perfmode train`` logs at start: the config's file, then each value changed."""
    where = str(loaded.path.resolve()) if loaded.path else "the embedded default (no --config)"
    changed = [s for s in settings if s.differs]
    if not changed:
        return [f"📄 Config: {where}; every value is the default"]
    n = len(changed)
    counted = f"{n} values differ" if n > 1 else "1 value differs"
    lines = [f"📄 Config: {where}; {counted} from the default:"]
    for s in changed:
        origin = s.origin
        if loaded.path and origin.startswith(f"{loaded.path}:"):
            origin = f"line {origin.rsplit(':', 1)[1]}"
        lines.append(
            f"   {s.key} = {format_value(s.value)}  (default {format_value(s.default)}; {origin})"
        )
    return lines


def show_json(loaded: LoadedConfig, settings: list[Setting]) -> dict[str, Any]:
    return {
        "file": str(loaded.path) if loaded.path else None,
        "config": to_mapping(loaded.config),
        "values": {
            s.key: {"value": s.value, "default": s.default, "origin": s.origin} for s in settings
        },
    }


def format_value(value: Any) -> str:
    """As YAML would spell it: null, true, [64, 64], 0.0003."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)
