"""The command line that starts a trainer in its own process: built here and nowhere else.

The page (``web.launcher``), ``perfmode train --seeds`` (``cli.train``), a sweep's trials
(``sweep.child``), ``perfmode bench`` (``bench.runner``), the benchmarks and the tests all
start trainers this way, so a change to how a trainer is started (the interpreter, the
module, the order of the flags) is one edit. Only the standard library is
imported: the page and ``perfmode set`` must not pay for torch to build a list of strings.
"""

from __future__ import annotations

import sys
from os import PathLike


def train_command(
    home: str | PathLike[str],
    *args: str,
    run: str | None = None,
    config: str | PathLike[str] | None = None,
) -> list[str]:
    """``python -m perfmode train --home HOME [--run RUN] [--config CONFIG] ARGS...``."""
    cmd = [sys.executable, "-m", "perfmode", "train", "--home", str(home)]
    if run is not None:
        cmd += ["--run", run]
    if config is not None:
        cmd += ["--config", str(config)]
    return [*cmd, *args]
