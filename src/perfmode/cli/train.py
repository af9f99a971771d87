"""``perfmode train``."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from perfmode.base.platform import on_stop_signals
from perfmode.cli.app import HomeOpt, app, home_of, setup_logging
from perfmode.cli.data import DateFormatOpt, SymbolOpt, with_data_options

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML config; keys it leaves out keep the embedded default's values (see "
        "`perfmode config show`). Default: the embedded default, synthetic data.",
        metavar="PATH",
        show_default=False,
        dir_okay=False,
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="A price file (check it with 'perfmode data check') or 'synthetic' (overrides env.data).",
        metavar="FILE|synthetic",
        show_default=False,
    ),
]
_FLAG_KEYS = {
    "--timesteps": "training.total_timesteps",
    "--seed": "training.seed",
    "--device": "training.device",
    "--data": "env.data",
    "--symbol": "env.symbol",
    "--date-format": "env.date_format",
}
RunOpt = Annotated[
    str,
    typer.Option(
        "--run", metavar="NAME", help="Run name: its own checkpoints, status and metrics."
    ),
]


@app.command()
def train(
    config: ConfigOpt = None,
    timesteps: Annotated[
        int | None,
        typer.Option(
            "--timesteps",
            min=1,
            metavar="N",
            help="Total timesteps of the run (a resume trains up to it, not beyond); rounded up "
            "to whole rollouts (n_steps × n_envs).",
            show_default=False,
        ),
    ] = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    date_format: DateFormatOpt = None,
    run: RunOpt = "default",
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", min=0, metavar="N", help="Seed (overrides training.seed).", show_default=False
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            metavar="LIST",
            help="Several seeds of this config, each its own run named RUN-sN: a range (0-3), "
            "a list (0,2,5) or both. Waits for all; Ctrl-C stops all (each saves); exits "
            "with the worst run's status. The same command again resumes each.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        Literal["auto", "cpu", "cuda"] | None,
        typer.Option(
            "--device",
            case_sensitive=False,
            help="auto (the CPU: an MLP policy trains faster there), cpu or cuda "
            "(overrides training.device).",
            show_default=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start over; the run's old checkpoints, metrics.csv and train.log are moved "
            "to archive/.",
        ),
    ] = False,
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint",
            help="Resume from a checkpoint saved by an older perfmode (model.zip, rng.pkl, "
            "vecnormalize.pkl). Unpickling runs code: only for checkpoints you made yourself.",
        ),
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Train (or resume) a PPO agent; the mode in settings.json steers it live.

    Checkpoints go to HOME/runs/RUN/checkpoints every training.checkpoint_freq steps.
    Ctrl-C or SIGTERM saves and exits 0; a second Ctrl-C quits at once. A progress bar on
    a terminal; a progress line every 10% (or 5 minutes) in a log. Creates the home if needed.

    Examples:
      perfmode train --timesteps 250000
      perfmode train --config configs/train_config.yaml --data prices.csv --run eurusd
      perfmode train --fresh --seed 7
      perfmode train --seeds 0-3 --run sweep
    """
    started_cpu = time.process_time()  # what this trainer uses from here on is its start-up
    if seeds is not None:
        code = _train_seeds(
            seeds,
            seed,
            run,
            config=config,
            timesteps=timesteps,
            data=data,
            symbol=symbol,
            date_format=date_format,
            device=device,
            fresh=fresh,
            trust_checkpoint=trust_checkpoint,
            home=home,
        )
        raise typer.Exit(code)
    with _stop_before_training() as stopped:
        try:
            h = home_of(home)
            setup_logging(log_file=h.log_file(run))  # first: a stop from here on is said
            from perfmode.config.schema import load_config_file
            from perfmode.config.view import settings_of, startup_lines

            # The config, then the data, then torch (seconds to import): bad input fails at once.
            loaded = load_config_file(config)
            cfg = loaded.config.with_overrides(total_timesteps=timesteps, seed=seed, device=device)
            cfg = replace(cfg, env=with_data_options(cfg.env, symbol, date_format))
            cfg = cfg.with_data(data)  # the run's env.data from here on: its checkpoints name it
            given = {
                "--timesteps": timesteps,
                "--seed": seed,
                "--device": device,
                "--data": data,
                "--symbol": symbol,
                "--date-format": date_format,
            }
            flags = {_FLAG_KEYS[f]: f for f, v in given.items() if v is not None}
            summary = startup_lines(loaded, settings_of(loaded, cfg, flags))
            from perfmode.env import load_market  # numpy and pandas: only once the config is good

            market = load_market(cfg.env)
            from perfmode.base.platform import lower_priority

            # Before torch: a trainer's start-up (seconds of CPU, again at every trial of a
            # sweep) gives way to the user's programs too. After the input is known good, so
            # a command refused for bad input leaves the caller's priority as it was.
            lower_priority(cfg.training.nice)
            from perfmode.training.trainer import train as run_training

            result = run_training(
                cfg,
                h,
                run,
                market=market,
                fresh=fresh,
                progress_bar=sys.stderr.isatty(),
                config_summary=summary,
                trust_checkpoint=trust_checkpoint,
                started_cpu=started_cpu,
            )
        except _StoppedBeforeTraining:
            logging.getLogger("perfmode.train").info(
                "🛑 %s: stopped before training started; nothing to save", stopped[0]
            )
            return
        # Saved: a late copy of the Ctrl-C that stopped it (see StopRequest) changes nothing.
        stopped.append("after training")
        if result.checkpoint is not None:
            typer.echo(f"checkpoint: {result.checkpoint}")


def _train_seeds(seeds: str, seed: int | None, run: str, **given: Any) -> int:
    """One child ``perfmode train`` per seed (see :mod:`perfmode.training.seeds`)."""
    from perfmode.errors import UsageError
    from perfmode.training.command import train_command
    from perfmode.training.seeds import SeedRuns, parse_seeds, seed_runs

    if seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    numbers = parse_seeds(seeds)
    names = seed_runs(run, numbers)
    h = home_of(given.pop("home"))
    flags: list[str] = []
    for flag in ("timesteps", "data", "symbol", "date_format", "device"):
        if given[flag] is not None:
            flags += [f"--{flag.replace('_', '-')}", str(given[flag])]
    flags += [f"--{f.replace('_', '-')}" for f in ("fresh", "trust_checkpoint") if given[f]]
    commands = [
        (name, train_command(h.root, *flags, "--seed", str(n), run=name, config=given["config"]))
        for n, name in zip(numbers, names, strict=True)
    ]
    typer.echo(f"Starting {len(names)} runs: {', '.join(names)}")
    return SeedRuns(commands).run()


class _StoppedBeforeTraining(BaseException):
    """Ctrl-C or SIGTERM before the trainer took those signals over (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it)."""


@contextlib.contextmanager
def _stop_before_training() -> Iterator[list[str]]:
    """Until training starts (importing torch and building the env take seconds), a stop
    request ends the command at once, with a word and exit 0, instead of the default
    handler's silent exit 143. The trainer installs its own handlers (stop at the next safe
    point and save) for as long as it trains."""
    stopped: list[str] = []

    def handler(signum: int, frame: Any) -> None:
        if not stopped:  # a second signal while the first unwinds changes nothing
            stopped.append(signal.Signals(signum).name)
            raise _StoppedBeforeTraining

    with on_stop_signals(handler):
        yield stopped
