"""``perfmode evaluate``: a policy or a baseline over the test split, as a table or JSON.

Heavy imports (torch, SB3, pandas, matplotlib, the env) happen inside the command, so
``perfmode set`` and ``status`` stay fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from perfmode.base.text import printable
from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.cli.data import DateFormatOpt, SymbolOpt
from perfmode.errors import UsageError


class Baseline(StrEnum):
    BUY_AND_HOLD = "buy-and-hold"
    FLAT = "flat"


@app.command()
def evaluate(
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            metavar="PATH|latest|sweep:NAME",
            help="A PPO .zip, a checkpoint folder, 'latest' (newest checkpoint in the home), or "
            "sweep:NAME (the final checkpoint of that sweep's best trial).",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Baseline | None,
        typer.Option(
            "--baseline",
            case_sensitive=False,
            help="Evaluate a fixed strategy instead of a model.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            metavar="FILE|synthetic",
            help="A price file or 'synthetic' (default: the config's env.data).",
            show_default=False,
        ),
    ] = None,
    symbol: SymbolOpt = None,
    date_format: DateFormatOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML config whose env: section to use (a checkpoint's meta.json wins).",
            metavar="PATH",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="Write a PNG of both equity curves, drawdowns shaded (the name must end .png).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint",
            help="Load a file that needs unpickling (a checkpoint from an older perfmode, an "
            "unusual SB3 zip). Unpickling runs code: only for files you made yourself.",
        ),
    ] = False,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL|FILE.journal",
            help="The sweep's storage, for --checkpoint sweep:NAME (default: HOME/sweeps/NAME.journal).",
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a policy deterministically over the test split and compare it with buy-and-hold.

    Prints total return, Sharpe ratio, max drawdown, trades and exposure for both.

    Examples:
      perfmode evaluate --checkpoint latest --plot equity.png
      perfmode evaluate --checkpoint runs/default/checkpoints/step_0000253952 --json
      perfmode evaluate --baseline buy-and-hold --data prices.csv
      perfmode evaluate --checkpoint sweep:lr
    """
    if (checkpoint is None) == (baseline is None):
        raise UsageError("pass either --checkpoint PATH or --baseline buy-and-hold|flat")
    setup_logging()
    from perfmode.env import load_env_config
    from perfmode.evaluation.evaluate import (
        evaluate_baseline,
        evaluate_checkpoint,
        resolve_checkpoint,
    )

    cfg = load_env_config(config) if config is not None else None
    read = {"symbol": symbol, "date_format": date_format}
    if baseline is not None:
        result = evaluate_baseline(baseline.value, cfg, data, plot=plot, **read)
    else:
        assert checkpoint is not None
        h = home_of(home, must_exist=True)
        if checkpoint.startswith("sweep:"):
            from perfmode.sweep.show import best_checkpoint
            from perfmode.sweep.storage import where

            name = checkpoint.removeprefix("sweep:")
            path = best_checkpoint(h, where(h, name, storage), name)
        else:
            path = resolve_checkpoint(h, checkpoint)
        result = evaluate_checkpoint(path, cfg, data, plot=plot, trust=trust_checkpoint, **read)
    if json_out:
        print_json(result)
        return
    for line in table_lines(result):
        typer.echo(printable(line))
    if plot is not None:
        typer.echo(f"Plot: {plot}")


def table_lines(result: dict[str, Any]) -> list[str]:
    policy, bench, d = result["policy"], result["buy_and_hold"], result["data"]
    rows = [
        ("total return", _pct(policy["total_return"]), _pct(bench["total_return"])),
        ("sharpe", f"{policy['sharpe']:.2f}", f"{bench['sharpe']:.2f}"),
        ("max drawdown", _pct(policy["max_drawdown"]), _pct(bench["max_drawdown"])),
        ("trades", f"{policy['trades']:,}", f"{bench['trades']:,}"),
        ("exposure", _pct(policy["exposure"]), _pct(bench["exposure"])),
    ]
    name = "policy" if policy["name"].startswith("checkpoint") else policy["name"]
    w1 = max(len(name), *(len(r[1]) for r in rows))
    w2 = max(len("buy-and-hold"), *(len(r[2]) for r in rows))
    lines = [f"{'':<14}{name:>{w1}}  {'buy-and-hold':>{w2}}"]
    lines += [f"{label:<14}{a:>{w1}}  {b:>{w2}}" for label, a, b in rows]
    test = d["test"]
    lines.append(
        f"Test data: {d['source']}, {test['start']} .. {test['end']} "
        f"({d['steps']:,} steps, {d['periods_per_year']:g} per year)"
    )
    if policy.get("halted_at"):
        lines.append(f"Drawdown limit hit at {policy['halted_at']}: flat from there on")
    return lines


def _pct(x: float) -> str:
    return f"{x:.1%}"
