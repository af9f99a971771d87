"""Text that came from a file, made fit for one line of a terminal or a message.

Anything a file holds (a hold's reason, a status field, a CSV cell) may carry escape
sequences that recolour or rewrite the terminal, a newline that forges a line of output,
or megabytes. Every printer of such text goes through :func:`printable`, and every message
that quotes a value goes through :func:`quote`.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Longest stretch of a file's text a message quotes; the reader needs the start, not all.
QUOTE_LIMIT = 80
# Longest line the command line prints: room for any real message, never a megabyte.
LINE_LIMIT = 2000
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    # Cc: C0/C1 controls (ESC, BEL, backspace); Cf: format characters such as the
    # right-to-left override that makes text read backwards; Zl/Zp: line separators.
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def cut(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def printable(text: Any, limit: int = LINE_LIMIT) -> str:
    """``text`` as one safe terminal line: controls shown as escapes, cut at ``limit``."""
    s = text if isinstance(text, str) else str(text)
    head = s[: limit + 1]  # never walk a megabyte character by character
    shown = head if head.isprintable() else "".join(_shown(ch) for ch in head)
    if len(s) <= limit and len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({max(len(s) - limit, 0):,} more characters)"


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A value for a message, quoted: ``'abc'``, cut at ``limit`` and made printable."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > limit:
        return f"'{printable(s[:limit], limit)}'... ({len(s):,} characters)"
    return f"'{printable(s, limit * 4)}'"
