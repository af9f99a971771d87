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
    config (validation when env.validation holds rows out; when it holds none, also the
    split `perfmode sweep` would use, holding out sweep.validation). FILE 'synthetic' shows
    the config's synthetic series. Exits 2 with one line naming the line and column if the
    file cannot be used.

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

    def split_of(env: Any) -> dict[str, Any]:
        if synthetic:
            return _parts(env, load_market(env, "synthetic").info)
        return _parts(env, split_market(prices.close, prices.time, env, summary).info)

    problem: UsageError | None = None
    split: dict[str, Any] = {}
    try:
        if synthetic:
            market = load_market(cfg, "synthetic")
            summary, split = market.summary, _parts(cfg, market.info)
        else:
            split = split_of(cfg)
    except UsageError as e:
        if synthetic:  # nothing was read to show
            raise
        problem = e
    sweep = _sweep_split(split_of, cfg, config) if split else None
    if json_out:
        print_json(
            {
                **summary.to_json(),
                **split,
                "sweep_split": sweep,
                "problem": str(problem) if problem else None,
            }
        )
    else:
        rows = summary.lines()
        if split:
            rows.append((f"Split {cfg.split}", _split_text(split)))
        if sweep is not None and cfg.validation == 0:
            held = f"sweep.validation {sweep['fraction']:g}"
            text = sweep.get("problem") or _split_text(sweep)
            rows.append(("Sweep split", f"{text} (what `perfmode sweep` uses: {held})"))
        width = max(len(label) for label, _ in rows) + 2
        for label, text in rows:
            typer.echo(f"{label:<{width}}{printable(text)}")  # column names come from the file
    if problem is not None:
        raise problem


def _parts(env: Any, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "window": env.window,
        "split": env.split,
        "validation": info.get("validation"),
        "train": info["train"],
        "test": info["test"],
    }


def _sweep_split(split_of: Any, cfg: Any, config: Path | None) -> dict[str, Any]:
    """The split a sweep's trials use: the config's own when env.validation holds rows out,
    else the same with sweep.validation held out (the test part is the same either way)."""
    from perfmode.config.sweep import SweepConfig, load_sweep_config

    sweep = load_sweep_config(config) if config is not None else SweepConfig()
    env = sweep.trial_env(cfg)
    try:
        return {"fraction": env.validation, **split_of(env)}
    except UsageError as e:  # train would still take this data; a sweep would not
        return {"fraction": env.validation, "problem": str(e)}


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
