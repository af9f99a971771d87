"""Dataclass configs from YAML mappings, layered over a default, with errors that name the key.

Each config section is a frozen dataclass whose fields carry their own docstrings; this
module turns a mapping into one, refusing unknown keys and wrong types before anything runs.
A key the mapping does not hold keeps the value the ``base`` instance has at that place, at
every depth: a file that sets one knob of a mode keeps the rest of *that* mode's profile.
Range checks live in each dataclass's ``__post_init__`` via :func:`check`.

Messages quote values through :func:`describe`, which never renders more than a line: a
value can be a YAML alias bomb or a number of thousands of digits.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from perfmode.errors import UsageError

T = TypeVar("T")


class ConfigKeyError(UsageError):
    """A bad config value or key; ``key`` is its dotted path, so a file can add its line."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {problem}")
        self.key = key
        self.problem = problem


def from_mapping(cls: type[T], data: Any, where: str, base: T | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, over ``base`` (else the field defaults).

    ``where`` is the section's dotted path in messages ("" for the top level).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigKeyError(
            where, f"{where or 'the top level'} must be a mapping of keys, got {_kind(data)}"
        )
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for k in data:
        if k not in fields:
            key = _join(where, describe(k, 40) if not isinstance(k, str) else cut(k, 40))
            raise ConfigKeyError(key, f"unknown key {key}; valid keys: {', '.join(fields)}")
    values = {}
    for name in fields:
        inner = getattr(base, name) if base is not None else None
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(where, name), inner)
        elif base is not None:
            values[name] = inner
    return cls(**values)


def to_mapping(obj: Any) -> dict[str, Any]:
    """The plain dict a YAML file would hold for this config."""
    return dataclasses.asdict(obj)


MAPPING_VALUES = frozenset({"sweep.space"})
"""Keys whose value is a mapping of its own (keyed by config keys): one setting each."""


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"modes.quiet.cpu_share": 0.5, ...}``: every leaf by its dotted key (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        key = _join(prefix, str(k))
        if isinstance(v, Mapping) and key not in MAPPING_VALUES:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigKeyError(key, f"{key} is {describe(value)}; it must be {allowed}")


class _ShortRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 2
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 4
        self.maxstring = self.maxother = 40

    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int past 4,300 digits raises (and is slow well before that).
        if x.bit_length() > 128:
            return f"<a number of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()


def describe(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, without ever building a long one."""
    return cut(_SHORT.repr(value), limit)


def cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    short = " ".join(text[: limit + 1].split())
    if len(short) <= limit and len(text) <= limit + 1:
        return short
    return short[: limit - 1] + "…"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), f"a {type(value).__name__}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _convert(tp: Any, value: Any, key: str, base: Any = None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        errors = []
        for a in rest:
            try:
                return _convert(a, value, key)
            except ConfigKeyError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            _bad(key, value, f"one of {allowed}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            _bad(key, value, "a list")
        item = args[0] if args else Any
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key, base)  # type: ignore[arg-type]
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigKeyError(key, f"{key} must be a mapping, got {_kind(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _bad(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            _bad(key, value, "a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _bad(key, value, "a number")
        try:
            return float(value)
        except OverflowError:
            _bad(key, value, "a number of a sensible size")
    if tp is str:
        if not isinstance(value, str):
            _bad(key, value, "a string")
        return value
    return value


def _bad(key: str, value: Any, allowed: str) -> typing.NoReturn:
    raise ConfigKeyError(key, f"{key} is {describe(value)}; it must be {allowed}")
