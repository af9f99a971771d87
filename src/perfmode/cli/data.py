"""``perfmode data check``: how a price file is understood, before days of training on it.

No torch here: reading a file needs only pandas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from perfmode.base.text import printable
from perfmode.cli.app import HomeOpt, JsonOpt, app, print_json
from perfmode.errors import UsageError

data_app = typer.Typer(
    help="Check price files: how each is read, before training on it.",
    epilog="Example: perfmode data check prices.csv",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

SymbolOpt = Annotated[
    str | None,
    typer.Option(
        "--symbol",
        metavar="SYMBOL",
        help="The instrument to use from a file of several (overrides env.symbol).",
        show_default=False,
    ),
]
DateFormatOpt = Annotated[
    Literal["day-first", "month-first"] | None,
    typer.Option(
        "--date-format",
        case_sensitive=False,
        help="The day/month order of a file whose every date reads both ways "
        "(overrides env.date_format).",
        show_default=False,
    ),
]


@data_app.command("check")
def check(
    file: Annotated[
        Path,
        typer.Argument(
            help="The price file (CSV or a similar text export).",
            metavar="FILE",
            show_default=False,
        ),
    ],
    symbol: SymbolOpt = None,
    date_format: DateFormatOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML config whose env: section to use (symbol, date_format, window, split).",
            metavar="PATH",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,  # accepted like every command's; reading a file needs no home
    json_out: JsonOpt = False,
) -> None:
    """Show how FILE is read, and whether train would accept it.

    Separator, time and price columns, date order, time zone, rows, first and last stamp,
    duplicates dropped, gaps, bars per year, and the train / validation / test split of the
    config (validation when env.validation holds rows out). FILE 'synthetic' shows the
    config's synthetic series. Exits 2 with one line naming the line and column if the file
    cannot be used.

    Examples:
      perfmode data check EURUSD_Candlestick_1_Hour_BID.csv
      perfmode data check prices.csv --symbol AAPL --date-format day-first --json
      perfmode data check synthetic --config sweep.yaml
    """
    from perfmode.env import EnvConfig, load_env_config
    from perfmode.env.data import load_market, read_prices, split_market

    cfg = load_env_config(config) if config is not None else EnvConfig()
    cfg = with_data_options(cfg, symbol, date_format)
    synthetic = str(file) == "synthetic"
    if not synthetic:
        prices = read_prices(file.expanduser(), symbol=cfg.symbol, date_format=cfg.date_format)
        summary = prices.summary
    problem: UsageError | None = None
    split: dict[str, Any] = {}
    try:
        if synthetic:
            market = load_market(cfg, "synthetic")
            summary, info = market.summary, market.info
        else:
            info = split_market(prices.close, prices.time, cfg, summary).info
        split = {
            "window": cfg.window,
            "split": cfg.split,
            "validation": info.get("validation"),
            "train": info["train"],
            "test": info["test"],
        }
    except UsageError as e:
        if synthetic:  # nothing was read to show
            raise
        problem = e
    if json_out:
        print_json({**summary.to_json(), **split, "problem": str(problem) if problem else None})
    else:
        rows = summary.lines()
        if split:
            rows.append((f"Split {cfg.split}", _split_text(split)))
        width = max(len(label) for label, _ in rows) + 2
        for label, text in rows:
            typer.echo(f"{label:<{width}}{printable(text)}")  # column names come from the file
    if problem is not None:
        raise problem


def with_data_options(cfg: Any, symbol: str | None, date_format: str | None) -> Any:
    """``cfg`` (an EnvConfig) with the command line's --symbol and --date-format applied."""
    changes = {k: v for k, v in {"symbol": symbol, "date_format": date_format}.items() if v}
    if symbol is not None and not symbol.strip():
        raise UsageError("--symbol is empty; pass a symbol name such as AAPL")
    return cfg.replace(**changes)


def _split_text(split: dict[str, Any]) -> str:
    parts = [
        ("train", split["train"]),
        ("validation", split["validation"]),
        ("test", split["test"]),
    ]
    return (
        ", ".join(
            f"{name} {part['start']} .. {part['end']} ({part['rows']:,} rows)"
            for name, part in parts
            if part is not None
        )
        + f", window {split['window']}"
    )
