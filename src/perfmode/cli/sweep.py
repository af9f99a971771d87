"""``perfmode sweep``: search hyperparameters (or seeds) with Optuna, each trial a governed run."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from perfmode.cli.app import HomeOpt, JsonOpt, app, home_of, print_json, setup_logging
from perfmode.cli.train import ConfigOpt, DataOpt

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        metavar="URL|FILE.journal",
        help="Where the study lives: a database URL Optuna accepts (postgresql://user:pass@"
        "host/db: the same study from several machines) or a journal file. Default: "
        "HOME/sweeps/NAME.journal.",
        show_default=False,
    ),
]


@app.command()
def sweep(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The study's name.", show_default=False)
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            metavar="N",
            help="Trials of the study in all (sweep.trials).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    timesteps_per_trial: Annotated[
        int | None,
        typer.Option(
            "--timesteps-per-trial",
            min=1,
            metavar="N",
            help="Training steps of each trial (sweep.timesteps_per_trial).",
            show_default=False,
        ),
    ] = None,
    storage: StorageOpt = None,
    data: DataOpt = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, metavar="N", help="Seed of the sampler.", show_default=False),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds",
            min=1,
            metavar="N",
            help="A seeds sweep: the config's hyperparameters with seeds 0..N-1, one trial each "
            "(--trials may be fewer, not more).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            metavar="N",
            help="Trials this command runs at once (default: the cores); the home's mode "
            "decides how many of them compute.",
            show_default=False,
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Show the study's trials and the best one; run nothing.")
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search hyperparameters or seeds with Optuna, each trial a governed run; or --show one.

    Each trial is an ordinary run (runs/sweep-NAME-<number>/) that the mode, holds,
    `status` and the page see; its score is its return on the data's validation part. The
    same command again (or on another machine with the same --storage) continues the study.

    Examples:
      perfmode sweep lr --trials 20 --timesteps-per-trial 50000
      perfmode sweep seeds --seeds 5 --config configs/train_config.yaml
      perfmode sweep lr --storage postgresql://me:secret@db.local/perfmode
      perfmode sweep lr --show --json
    """
    from perfmode.sweep.storage import check_sweep_name, where

    check_sweep_name(name)
    if show:
        from perfmode.sweep.show import lines, load_study, summary

        h = home_of(home, must_exist=storage is None)
        w = where(h, name, storage)
        s = summary(load_study(w, name), w)
        if json_out:
            print_json(s)
        else:
            for line in lines(s):
                typer.echo(line)
        return
    if json_out:
        from perfmode.errors import UsageError

        raise UsageError("--json goes with --show (a running sweep logs lines)")
    from perfmode.sweep.storage import patience_seconds

    patience = patience_seconds()
    h = home_of(home)
    w = where(h, name, storage)
    from perfmode.config.schema import available_cores, load_config_file
    from perfmode.config.sweep import check_space_against, for_command

    cfg = load_config_file(config).config
    cfg = dataclasses.replace(
        cfg,
        sweep=for_command(cfg.sweep, trials=trials, timesteps=timesteps_per_trial, seeds=seeds),
    )
    check_space_against(
        dataclasses.replace(
            cfg, sweep=dataclasses.replace(cfg.sweep, space=cfg.sweep.effective_space())
        )
    )
    from perfmode.env import load_market

    load_market(cfg.sweep.trial_env(cfg.env), data)  # bad data is one line now, not one per trial
    from perfmode.sweep.runner import Sweep, SweepOptions

    s = cfg.sweep
    options = SweepOptions(
        name=name,
        trials=s.trials,
        timesteps=s.timesteps_per_trial,
        jobs=jobs or available_cores(),
        data=data,
        seed=seed,
        patience=patience,
    )
    # Opening the study first: a bad URL or a database that is down is one line, and nothing
    # is written to the home.
    runner = Sweep(h, cfg, w, options)
    log_file = h.root / "sweeps" / f"{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file=log_file)
    result = runner.run()
    typer.echo(
        f"sweep {name}: {result.ran} trial(s) run here ({result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed); see `perfmode sweep {name} --show`"
    )
    from perfmode.errors import PerfmodeError

    if result.unrecorded:
        raise PerfmodeError(
            f"could not record {', '.join(result.unrecorded)} in {w.label}; their run folders "
            "and checkpoints are kept: run the same command again once the storage is back"
        )
    if result.error:
        raise PerfmodeError(
            f"sweep {name} stopped: {result.error}; its trials resume with the same command"
        )
