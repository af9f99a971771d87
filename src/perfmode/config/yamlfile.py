"""Reading a YAML config file: bounded, so nothing a file holds can exhaust the machine.

A config is a few KB. Whatever a file holds (gigabytes, ``/dev/zero``, a FIFO, an alias bomb
that expands to billions of values, nesting 20,000 deep, a number of 5,000 digits, bytes that
are not UTF-8), reading it answers within a fraction of a second: the value, or one
:class:`UsageError` line that names the file and the line. The mapping comes back with the
line each key was written on, so errors and ``perfmode config show`` can point at it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from perfmode.config.sections import ConfigKeyError, cut, describe
from perfmode.errors import UsageError

MAX_BYTES = 256 * 1024
"""A config is a few KB (the documented default is under 3 KB)."""
MAX_DEPTH = 32
"""Nesting levels; a config uses four."""
MAX_VALUES = 2_000
"""Values, counting each alias as what it expands to; the default config has under 100."""

T = TypeVar("T")


@dataclass(frozen=True)
class YamlFile:
    path: Path
    data: Any
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)
    """The 1-based line each key was written on, by its path (``("modes", "quiet", "cpu_share")``)."""

    def line_of(self, key: str) -> int | None:
        """The line of a dotted key such as ``ppo.net_arch[1]`` (its nearest written parent)."""
        parts = tuple(key.split("[", 1)[0].split("."))
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None

    def build(self, make: Callable[[Any], T]) -> T:
        """``make(self.data)``, its errors prefixed with ``file:line`` of the offending key."""
        try:
            return make(self.data)
        except ConfigKeyError as e:
            line = self.line_of(e.key) if e.key else None
            at = f"{self.path}:{line}" if line else str(self.path)
            raise UsageError(f"{at}: {e.problem}") from None
        except UsageError as e:
            raise UsageError(f"{self.path}: {e}") from None


def read_yaml_file(path: Path) -> YamlFile:
    path = Path(path)
    text = _read_text(path)
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
        if node is None:
            return YamlFile(path, None)
        _check_expanded_size(node)
        _check_no_key_twice(node)  # before construction: merges (<<) would look like repeats
        data = loader.construct_document(node)
    except _TooBig as e:
        raise UsageError(f"config file {path} {e}") from None
    except _KeyTwice as e:
        raise UsageError(
            f"config file {path}, line {e.second}: {e.key} is written twice (lines {e.first} "
            f"and {e.second}); YAML would keep the last silently: delete one of them"
        ) from None
    except _BadValue as e:
        raise UsageError(
            f"config file {path}, line {e.line}: cannot read {describe(e.text, 40)} "
            f"({cut(str(e.__cause__).split(':')[0], 60)}); write a plain number, string or date"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or ""
        if isinstance(e, yaml.reader.ReaderError):
            at = f" at line {text.count(chr(10), 0, e.position) + 1}"
            problem = f"character #x{e.character:04x} is not allowed"
        why = f" ({cut(str(problem), 70)})" if problem else ""
        raise UsageError(
            f"config file {path} is not valid YAML{at}{why}; fix it and retry"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlFile(path, data, _key_lines(node))


def _read_text(path: Path) -> str:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise UsageError(
            f"config file {path} does not exist; check the path, or write the default there "
            f"with `perfmode config init {path}`"
        ) from None
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise UsageError(f"config file {path} is {what}; pass a YAML file")
        if st.st_size > MAX_BYTES:
            raise UsageError(_too_large(path))
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # the size can change between fstat and read
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise UsageError(_too_large(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {raw[e.start]:#04x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None


def _too_large(path: Path) -> str:
    return (
        f"config file {path} is larger than {MAX_BYTES // 1024} KiB; a config is a few KB: "
        "is this the right file?"
    )


class _TooBig(Exception):
    pass


class _BadValue(Exception):
    def __init__(self, text: str, line: int) -> None:
        super().__init__(text)
        self.text = text
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader (pure Python: its composer's depth can be bounded) with limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        if self._nodes > MAX_VALUES:
            raise _TooBig(
                f"holds more than {MAX_VALUES:,} values; a config has under 100: "
                "is this the right file?"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner's look-ahead costs O(levels) per token inside [ and {: stop it early.
        if self.flow_level >= MAX_DEPTH:
            raise _too_deep(self.line + 1)
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as e:
            # A scalar YAML resolves but Python cannot build: 2020-13-45, a 5,000-digit int.
            raise _BadValue(str(node.value), node.start_mark.line + 1) from e


class _KeyTwice(Exception):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


def _check_no_key_twice(root: yaml.Node) -> None:
    """A hand-edited config where a key appears twice in one mapping: PyYAML keeps the last
    one without a word, and the user edits the first and sees no effect."""
    seen: set[int] = set()  # aliases share nodes: each mapping is looked at once

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                walk(child, path)
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
            if name is not None and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if name in lines:
                    raise _KeyTwice(cut(".".join((*path, name)), 80), lines[name], line)
                lines[name] = line
            walk(value, (*path, name or "?"))

    walk(root, ())


def _too_deep(line: int) -> _TooBig:
    return _TooBig(f"nests more than {MAX_DEPTH} levels deep (line {line}); a config nests 4")


def _check_expanded_size(root: yaml.Node) -> None:
    # Aliases make the node graph a DAG; what the program would walk is its expansion.
    # Sizes are memoised per node, so an alias bomb is measured without being expanded.
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _TooBig(
                    f"expands to more than {MAX_VALUES:,} values through its YAML aliases "
                    "(*name); write the values out instead"
                )
        sizes[id(node)] = total
        return total

    size(root)


def _key_lines(root: yaml.Node) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                here = (*path, str(key.value))
                lines[here] = key.start_mark.line + 1
                walk(value, here)

    walk(root, ())
    return lines
