"""Ctrl-C and SIGTERM (Ctrl-Break on Windows) during training: a request to stop at the next
safe point."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from perfmode.base.platform import on_stop_signals

log = logging.getLogger("perfmode.train")


# One Ctrl-C can arrive twice: the terminal sends SIGINT to its whole foreground group, and
# a starter in that group (`perfmode hold`, a script) passes its own copy on. Both land
# within milliseconds; a person's deliberate second Ctrl-C comes after reading the message.
SAME_STOP_S = 1.5


class StopRequest:
    """Ctrl-C or SIGTERM: stop at the next safe point and save; a second Ctrl-C: stop now.

    Any signal within ``SAME_STOP_S`` of the first is that same stop, whichever process
    passed it on and in whatever order the copies arrive.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.requested = False
        self._clock = clock
        self._first_at = 0.0

    def begin(self) -> bool:
        """Mark the stop as requested now: its signal, or news of it (a starter sees its
        child exit on the Ctrl-C that reached the child first). False when it already was."""
        if self.requested:
            return False
        self.requested, self._first_at = True, self._clock()
        return True

    def is_copy(self) -> bool:
        """Whether a signal arriving now is another copy of the stop already requested."""
        return self.requested and self._clock() - self._first_at <= SAME_STOP_S

    def _handle(self, signum: int, frame: Any) -> None:
        if self.is_copy():
            return
        if not self.begin() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info(
            "🛑 %s: stopping at the next safe point and saving (Ctrl-C again to quit now)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        with on_stop_signals(self._handle):
            yield
