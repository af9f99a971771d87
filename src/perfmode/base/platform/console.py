"""What the console can print: plain ASCII in place of the symbols it cannot encode.

perfmode's lines carry a few symbols (``⚠️``, ``🧵``, ``×``, ``→``, the bar's ``━``). A
console whose encoding lacks them (cp1252 or cp437 on Windows when output is redirected,
an ISO-8859-1 or C locale elsewhere) would raise ``UnicodeEncodeError`` at the first one.
``fit_console`` gives such a stream an error handler that writes ASCII instead: ``x`` for
``×``, ``->`` for ``→``, ``!`` for a warning sign, nothing for a decorative emoji (and the
space after it), ``?`` for anything else. A UTF-8 console is left alone; log files are
always UTF-8 and keep the symbols.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import unicodedata
from typing import Any

ERRORS = "perfmode-ascii"
"""The codec error handler's name (``stream.reconfigure(errors=ERRORS)``)."""

ASCII_FOR = {
    "×": "x",
    "→": "->",
    "←": "<-",
    "—": "-",
    "–": "-",
    "…": "...",
    "°": " deg",
    "µ": "u",
    "±": "+/-",
    "━": "-",
    "╸": "-",
    "╺": "-",
    "•": "*",
    "⚠": "!",
    "✅": "ok",
    "❌": "x",
    "▶": ">",
    "⏸": "||",
    "ℹ": "i",
    "\N{VARIATION SELECTOR-16}": "",
}
# The symbols a console must print for perfmode's lines to be whole.
_PROBE = "⏳🧵×→━⚠️"


def _ascii_of(ch: str) -> str | None:
    """ASCII for one character; None: a decorative symbol, dropped."""
    if ch in ASCII_FOR:
        return ASCII_FOR[ch]
    if unicodedata.category(ch) == "So":  # emoji and other pictographs
        return None
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return plain or "?"


def _handler(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text, end = exc.object, exc.end
    out, dropped = [], False
    for ch in text[exc.start : end]:
        plain = _ascii_of(ch)
        if plain is None:
            dropped = True
        elif plain or not dropped:  # a variation selector goes with what it follows
            out.append(plain)
            dropped = False
    if dropped:  # "🧵 Threads" reads "Threads", not " Threads"
        while end < len(text) and text[end] == " ":
            end += 1
    return "".join(out), end


codecs.register_error(ERRORS, _handler)


def can_print(encoding: str) -> bool:
    try:
        _PROBE.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def console_text(text: str, encoding: str) -> str:
    """``text`` as a console in ``encoding`` shows it after ``fit_console``."""
    return text.encode(encoding, ERRORS).decode(encoding)


def streams_without_console() -> None:
    """``pythonw.exe`` (a Windows service, a task) starts with ``sys.stdout`` and
    ``sys.stderr`` None, and the first warning written there would raise: point them at
    the null device; the lines that matter go to ``--log-file``."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def fit_console(stream: Any) -> None:
    """Let ``stream`` (stdout, stderr) print every perfmode line in its own encoding.
    Nothing happens to a stream that can print the symbols, is None (``pythonw.exe``) or
    cannot be reconfigured."""
    encoding = getattr(stream, "encoding", None)
    if not encoding or can_print(encoding):
        return
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(Exception):
            reconfigure(errors=ERRORS)
