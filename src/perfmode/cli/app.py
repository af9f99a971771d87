"""The Typer app, the options every command shares, and the one place errors become exit codes.

Commands live in sibling modules and stay thin: parse, call the library, print.
Nothing here imports torch; commands that need it import the library inside the function.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from perfmode import __version__
from perfmode.base.home import HOME_ENV, Home, resolve_home
from perfmode.base.logfile import LogFile
from perfmode.base.text import printable
from perfmode.cli.usage_errors import ClickException, NoArgsIsHelpError, UsageError, one_line
from perfmode.errors import PerfmodeError
from perfmode.errors import UsageError as PerfmodeUsageError


class _PerfmodeGroup(TyperGroup):
    """Every error a user can cause ends as one ``Error: ...`` line and an exit code."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a program calling the app handles the exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            # Not standalone: Typer would print its own errors as a box of several lines.
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
            sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        except (BrokenPipeError, _ClosedPipe):
            code = closed_pipe_exit()
        except NoArgsIsHelpError as e:
            e.show()
            code = e.exit_code
        except UsageError as e:
            typer.echo(f"Error: {one_line(e)}", err=True)
            code = e.exit_code
        except ClickException as e:
            typer.echo(f"Error: {' '.join(e.format_message().split())}", err=True)
            code = e.exit_code
        except (typer.Abort, EOFError):
            typer.echo("Aborted.", err=True)
            code = 1
        sys.exit(code)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _ClosedPipe from None  # past Click, which would exit 1 for it
        except SystemExit as e:
            _raise_if_closed_pipe(e)
            raise
        except PerfmodeError as e:
            # Messages quote files and input: one line, escapes shown, never a megabyte.
            typer.echo(f"Error: {printable(str(e))}", err=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            # The library turns the failures it expects into PerfmodeError; this is the net
            # for the rest (a home on /sys, a disk that filled up): one line, not a traceback.
            typer.echo(f"Error: {printable(os_error_line(e))}", err=True)
            raise typer.Exit(1) from None

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:  # `perfmode --help | head -1`: the help is printed while the context is made
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            raise _ClosedPipe from None
        except SystemExit as e:
            _raise_if_closed_pipe(e)
            raise

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda name: name == "version")

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
        return command


class _ClosedPipe(Exception):
    """stdout's reader went away; not an OSError, so that Click lets it through to main."""


SIGPIPE_EXIT = 128 + 13


def _raise_if_closed_pipe(e: SystemExit) -> None:
    # rich meets a closed pipe (the help text) by exiting 1 from inside its print.
    if isinstance(e.__context__, BrokenPipeError):
        raise _ClosedPipe from None


def closed_pipe_exit() -> int:
    """The reader of stdout went away (``perfmode status | head -1``): nothing to say.

    stdout then points at the null device, so the interpreter's last flush finds nowhere to
    fail; the status is what a shell reports for ``ls | head`` (killed by SIGPIPE).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout with no file descriptor (a test's capture)
        pass
    return SIGPIPE_EXIT


def tolerant_console() -> None:
    """A console that cannot encode a character (an ISO-8859-1 locale, an emoji in a message)
    shows an escape for it instead of failing the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        if reconfigure is not None and not encoding.startswith("utf"):
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


def os_error_line(e: OSError) -> str:
    what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    return (
        f"{what}; check that --home (or PERFMODE_HOME) is a folder you can write, with free space"
    )


def _tidy_help(command: Any, ctx: Any) -> None:
    """Flags without a ``<bool>`` type column, in this command and any it groups."""
    _plain_flags(command.get_params(ctx))
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub, ctx)


def _plain_flags(params: list[Any]) -> list[Any]:
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


app = typer.Typer(
    cls=_PerfmodeGroup,
    name="perfmode",
    help="Train PPO trading agents for days; steer their resource use live with a mode "
    "(quiet or performance).",
    epilog="Examples: perfmode train  |  perfmode set performance  |  perfmode status",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"perfmode {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass


@app.command("version")
def version() -> None:
    """Print the version.

    Example: perfmode version
    """
    typer.echo(f"perfmode {__version__}")


HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        # $PERFMODE_HOME is read by resolve_home, not here, so that a bad value is reported
        # under the name it came from.
        help=f"Folder holding settings.json, runs and logs (default: ${HOME_ENV}, else the "
        "current directory).",
        metavar="DIR",
        show_default=False,
        file_okay=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def home_of(home: Path | None, *, must_exist: bool = False) -> Home:
    """The home; a read command (``must_exist``) refuses one that is not there yet, and a
    writing command creates it when it first writes."""
    h = resolve_home(home)
    if must_exist and not h.root.is_dir():
        raise PerfmodeUsageError(
            f"home folder {h.root} does not exist; check --home (or ${HOME_ENV}); "
            "'perfmode set' or 'perfmode train' creates it"
        )
    return h


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def setup_logging(level: int = logging.INFO, log_file: Path | None = None) -> None:
    """Library log lines go to stderr as plain messages (and to ``log_file`` with times)."""
    root = logging.getLogger("perfmode")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file is not None:
        fh = LogFile(log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(fh)
    root.propagate = False
