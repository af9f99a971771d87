"""Ctrl-C and SIGTERM during training: a request to stop at the next safe point."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("perfmode.train")


class StopRequest:
    """Ctrl-C or SIGTERM: stop at the next safe point and save; a second Ctrl-C: stop now."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.info(
            "🛑 %s: stopping at the next safe point and saving (Ctrl-C again to quit now)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
