"""``perfmode bench``: the library measures (:mod:`perfmode.bench`); this prints."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from perfmode.cli.app import JsonOpt, app, print_json
from perfmode.cli.data import DateFormatOpt, SymbolOpt, with_data_options
from perfmode.cli.train import ConfigOpt, DataOpt

_ROWS = (("quiet", "quiet"), ("performance", "performance"), ("plain_sb3", "plain SB3"))
_RATIOS = (
    ("performance/quiet", "performance / quiet"),
    ("performance/plain_sb3", "performance / plain SB3"),
)


@app.command()
def bench(
    config: ConfigOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    date_format: DateFormatOpt = None,
    minutes: Annotated[
        float,
        typer.Option(
            "--minutes",
            metavar="MINUTES",
            help="Measuring time (fractions work): 3/4 alternating quiet and performance, "
            "1/4 plain SB3 (all of it in the modes with --no-reference). Start-up, warm-up "
            "and plain SB3's first rollout and update come on top.",
        ),
    ] = 2.0,
    no_reference: Annotated[
        bool, typer.Option("--no-reference", help="Skip the plain SB3 reference.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="Write a PNG of steps/s over time, each mode's stretches shaded.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure how fast your config trains on this machine: quiet vs performance vs plain SB3.

    A real `perfmode train` runs in a temporary home (never yours), switched between modes.

    The first seconds after each switch are skipped: the figures describe the mode.

    Plain SB3 (MlpPolicy, same hyperparameters, torch's default threads) runs after it.

    Other programs running meanwhile change the figures; their CPU use is printed too.

    Ctrl-C stops everything and exits 130.

    Examples:
      perfmode bench
      perfmode bench --config my.yaml --minutes 5 --plot bench.png
      perfmode bench --minutes 0.5 --no-reference --json
    """
    from perfmode.bench import BenchRequest, run_bench
    from perfmode.config.schema import load_config

    cfg = load_config(config)
    cfg = dataclasses.replace(cfg, env=with_data_options(cfg.env, symbol, date_format))
    name = str(config) if config is not None else "default config"
    request = BenchRequest(cfg, name, data, minutes, not no_reference, plot)
    try:
        with _progress_bar() as progress:
            result = run_bench(request, progress)
    except KeyboardInterrupt:
        typer.echo("Interrupted: the bench stopped its trainer; nothing was measured.", err=True)
        raise typer.Exit(130) from None
    if json_out:
        print_json(result)
        return
    for line in table_lines(result):
        typer.echo(line)


@contextmanager
def _progress_bar() -> Iterator[Any]:
    """A bar on stderr when it is a terminal; otherwise nothing."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<58}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def report(what: str, done: float, total: float) -> None:
            bar.update(task, description=what, completed=done, total=total)

        yield report


def table_lines(result: dict[str, Any]) -> list[str]:
    rows = [(label, result["rows"][key]) for key, label in _ROWS if result["rows"][key]]
    m = result["machine"]
    gpu = m["device"] != "cpu"
    head = f"{'':<24}{'steps/s':>10}{'CPU cores':>11}{'peak memory':>13}"
    lines = [head + (f"{'GPU busy':>10}{'GPU memory':>12}" if gpu else "")]
    for label, row in rows:
        line = (
            f"{label:<24}{_num(row['steps_per_s'], ',.0f'):>10}"
            f"{_num(row['cpu_cores'], '.2f'):>11}"
            f"{_num(row['peak_memory_mib'], ',.0f', ' MiB'):>13}"
        )
        if gpu:
            line += (
                f"{_num(row['gpu_util_pct'], '.0f', '%'):>10}"
                f"{_num(row['gpu_mem_used_mib'], ',.0f', ' MiB'):>12}"
            )
        lines.append(line)
    for key, label in _RATIOS:
        r = result["ratios"][key]
        if r is not None:
            lines.append(
                f"{label:<24}{_num(r['steps_per_s'], '.2f', '×'):>10}"
                f"{_num(r['cpu_cores'], '.2f', '×'):>11}"
                f"{_num(r['peak_memory_mib'], '.2f', '×'):>13}"
            )
    p = result["plan"]
    lines.append("")
    ref = (
        f", then plain SB3 for {p['reference_seconds']:g} s after its first update"
        if result["rows"]["plain_sb3"]
        else ""
    )
    lines.append(
        f"Measured: {result['config']}, {result['data']} data; {p['segments']} alternating "
        f"segments of {p['segment_seconds']:g} s (the first {p['settle_seconds']:g} s after "
        f"each switch skipped){ref}; {_span(result['elapsed_seconds'])} in all."
    )
    threads = result.get("performance_threads") or {}
    if threads.get("rollout") is not None:
        how = "from the profile" if threads.get("choice") == "profile" else "measured"
        lines.append(
            f"Performance threads: {threads['rollout']} rollout / {threads['update']} update "
            f"({how})."
        )
    cpu = f" ({m['cpu']})" if m.get("cpu") else ""
    card = f" ({m['gpu']})" if m.get("gpu") else ""
    lines.append(
        f"Machine: {m['cores']} cores{cpu}, torch {m['torch']}, device {m['device']}{card}."
    )
    if gpu:
        lines.append(
            "GPU busy: NVML's utilisation (any process's kernels); GPU memory: the most the "
            "card had in use."
        )
    f = result["foreign_cpu"]
    if f["mean_cores"] is not None:
        lines.append(
            f"Other programs used {f['mean_cores']:.2f} cores on average (at most "
            f"{f['max_cores']:.2f}) while it measured; anything else running changes these "
            "figures."
        )
    lines += [f"Note: {note}" for note in result.get("notes", [])]
    if result.get("plot"):
        lines.append(f"Plot: {result['plot']}")
    return lines


def _span(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _num(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"
