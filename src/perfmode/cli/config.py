"""``perfmode config show`` and ``perfmode config init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from perfmode.cli.app import JsonOpt, app, print_json
from perfmode.cli.train import ConfigOpt

config_app = typer.Typer(
    help="See the config a run would use, or write the default one to edit.",
    epilog="Examples: perfmode config show --config my.yaml  |  perfmode config init my.yaml",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Print the config `perfmode train` would use, each value with where it came from.

    ORIGIN is "default", or FILE:LINE where the file sets the value.
    A value that differs from the default is followed by the default.

    Examples:
      perfmode config show
      perfmode config show --config configs/train_config_gpu_optimized.yaml --json
    """
    from perfmode.config.schema import load_config_file
    from perfmode.config.view import settings_of, show_json, show_lines

    loaded = load_config_file(config)
    settings = settings_of(loaded)
    if json_out:
        print_json(show_json(loaded, settings))
        return
    for line in show_lines(settings):
        typer.echo(line)


@config_app.command("init")
def init(
    path: Annotated[
        Path,
        typer.Argument(help="Where to write it (a folder gets train_config.yaml).", metavar="PATH"),
    ] = Path("train_config.yaml"),
) -> None:
    """Write the documented default config for you to edit; an existing file is never replaced.

    Examples:
      perfmode config init
      perfmode config init ~/trading/eurusd.yaml
    """
    from perfmode.config.schema import write_default_config

    written = write_default_config(path)
    typer.echo(f"Wrote {written}: the default config, every key documented.")
    typer.echo(f"Edit it, then: perfmode train --config {written}")
