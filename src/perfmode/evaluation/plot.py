"""The pictures: equity curves with drawdowns (``evaluate``) and steps/s by mode (``bench``).

Uses matplotlib's object API with the Agg canvas, never pyplot: no global figure state,
no display needed, and it works whatever backend the user's matplotlibrc names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.base.modes import colours
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
    return _save_png(fig, path)


def plot_bench(
    path: Path,
    points: Sequence[tuple[float, float, str]],
    segments: Sequence[tuple[float, float, str]],
    reference: float | None = None,
    title: str = "",
) -> Path:
    """Write a PNG of steps/s over time: ``points`` are (seconds, steps/s, mode) per PPO
    update, ``segments`` (start, end, mode) the stretches measured in each mode, shaded;
    ``reference`` (plain SB3's steps/s, measured afterwards) is a horizontal line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    handles: list[Any] = []
    for mode, colour in colours().items():
        spans = [(a, b) for a, b, m in segments if m == mode]
        for a, b in spans:
            ax.axvspan(a, b, color=colour, alpha=0.12, linewidth=0)
        if spans:
            handles.append(Patch(color=colour, alpha=0.3, label=f"{mode} mode"))
    if segments:
        warm = min(a for a, _, _ in segments)
        ax.axvspan(0, warm, color="tab:gray", alpha=0.12, linewidth=0)
        handles.append(Patch(color="tab:gray", alpha=0.3, label="start-up, warm-up"))
    if points:
        t = np.array([p[0] for p in points])
        fps = np.array([p[1] for p in points])
        (line,) = ax.plot(
            t, fps, color="black", linewidth=0.8, alpha=0.6, label="steps/s per update"
        )
        handles.insert(0, line)
        for mode, colour in colours().items():
            mask = np.array([p[2] == mode for p in points])
            ax.scatter(t[mask], fps[mask], s=10, color=colour, zorder=3)
    if reference is not None:
        handles.append(
            ax.axhline(
                reference,
                color="tab:green",
                linestyle="--",
                linewidth=1.4,
                label=f"plain SB3 (measured afterwards): {reference:,.0f} steps/s",
            )
        )
    ax.set_xlabel("seconds since the bench started")
    ax.set_ylabel("steps/s")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would hide the first points of the run.
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    return _save_png(fig, path)


def _save_png(fig: Any, path: Path) -> Path:
    path = Path(path)
    try:
        fig.savefig(path, format="png", dpi=110)
    except OSError as e:
        raise PerfmodeError(f"cannot write the plot to {path}: {e.strerror or e}") from None
    return path
