"""Dataclass configs from YAML mappings, with errors that name the key and what is allowed.

Each config section is a frozen dataclass whose fields carry their own docstrings; this
module turns a mapping into one, refusing unknown keys and wrong types before anything runs.
Range checks live in each dataclass's ``__post_init__`` via :func:`check`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from perfmode.errors import UsageError

T = TypeVar("T")


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` names the section in messages."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UsageError(f"config: {where} must be a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise UsageError(
            f"config: unknown key {where}.{unknown[0]}; valid keys: {', '.join(fields)}"
        )
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def to_mapping(obj: Any) -> dict[str, Any]:
    """The plain dict a YAML file would hold for this config."""
    return dataclasses.asdict(obj)


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise UsageError(f"config: {key} is {value!r}; it must be {allowed}")


def _convert(tp: Any, value: Any, key: str) -> Any:
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
            except UsageError as e:
                errors.append(str(e))
        raise UsageError(errors[0])
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise UsageError(f"config: {key} is {value!r}; it must be one of {allowed}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise UsageError(f"config: {key} is {value!r}; it must be a list")
        item = args[0] if args else Any
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise UsageError(f"config: {key} must be a mapping")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"config: {key} is {value!r}; it must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UsageError(f"config: {key} is {value!r}; it must be a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"config: {key} is {value!r}; it must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"config: {key} is {value!r}; it must be a string")
        return value
    return value
