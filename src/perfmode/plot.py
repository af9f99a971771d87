"""The equity-curve picture: equity of each strategy over time, drawdowns shaded below.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global figure state,
no display needed, and it works whatever backend the user's matplotlibrc names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from perfmode.errors import PerfmodeError

_COLOURS = ("tab:blue", "tab:gray", "tab:orange", "tab:green")


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fall from the running peak, as a positive fraction, at each point."""
    equity = np.asarray(equity, dtype=np.float64)
    return 1.0 - equity / np.maximum.accumulate(equity)


def plot_equity(
    path: Path,
    time: np.ndarray,
    curves: Mapping[str, np.ndarray],
    title: str = "",
    halted: np.datetime64 | None = None,
) -> Path:
    """Write a PNG of ``curves`` (label -> equity, starting at 1) against ``time``;
    ``halted`` marks where the drawdown limit closed the first curve's position."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for (label, equity), colour in zip(curves.items(), _COLOURS, strict=False):
        top.plot(time, equity, label=label, color=colour, linewidth=1.2)
        dd = drawdown(equity)
        bottom.fill_between(time, -dd, 0.0, color=colour, alpha=0.35, linewidth=0, label=label)
    top.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)
    if halted is not None:
        for ax in (top, bottom):
            ax.axvline(halted, color="tab:red", linestyle=":", linewidth=1.2)
        top.plot([], [], color="tab:red", linestyle=":", label="drawdown limit hit")
    top.set_ylabel("equity (start = 1)")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0))
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    path = Path(path)
    try:
        fig.savefig(path, format="png", dpi=110)
    except OSError as e:
        raise PerfmodeError(f"cannot write the plot to {path}: {e.strerror or e}") from None
    return path
