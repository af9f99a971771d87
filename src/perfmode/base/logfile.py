"""A log file that can never stop the program logging to it.

A run's ``train.log`` is where the run is remembered, not the run itself: a disk that fills
up, a read-only home or a FIFO planted at its path must not end or hang a days-long run,
nor print a traceback per line (what ``logging.FileHandler`` does). Trouble is said once on
stderr; the next line tries again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import IO

from perfmode.base.smallfile import open_append


class LogFile(logging.Handler):
    """Appends formatted records to ``path``, opened at the first line once its folder exists.

    Until the folder is there (the trainer makes the run folder), lines go to the console
    only: a command that fails on bad input leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._stream: IO[str] | None = None
        self._trouble: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self._stream is None:
                if not self.path.parent.is_dir():
                    return
                self._stream = os.fdopen(open_append(self.path), "a", encoding="utf-8")
            self._stream.write(line)
            self._stream.flush()
        except (OSError, ValueError) as e:
            self._close_stream()
            trouble = getattr(e, "strerror", None) or str(e)
            if trouble != self._trouble:
                sys.stderr.write(
                    f"⚠️  cannot write {self.path} ({trouble}); lines go to the "
                    "terminal only until it works again\n"
                )
            self._trouble = trouble
            return
        self._trouble = None

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def close(self) -> None:
        self.acquire()
        try:
            self._close_stream()
        finally:
            self.release()
        super().close()
