"""Typer's own usage errors (a bad value, a missing argument, an unknown option) as one line.

Typer prints them as a usage block and a box of five to eight lines; the README promises
``Error: ...`` on one line with exit status 2, as for the library's own ``UsageError``.
The line names the parameter, the value given, and what would be accepted.
"""

from __future__ import annotations

from typing import Any

# Typer 0.29+ carries its own copy of Click; earlier releases use Click itself.
try:
    from typer._click.exceptions import (
        BadParameter,
        ClickException,
        MissingParameter,
        NoArgsIsHelpError,
        NoSuchOption,
        UsageError,
    )
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import (  # type: ignore[no-redef]
        BadParameter,
        ClickException,
        MissingParameter,
        NoArgsIsHelpError,
        NoSuchOption,
        UsageError,
    )

__all__ = ["ClickException", "NoArgsIsHelpError", "UsageError", "one_line"]


def one_line(e: ClickException) -> str:
    """The message for ``Error: ...``: one line, naming what to pass instead."""
    if isinstance(e, MissingParameter):
        text = _missing(e)
    elif isinstance(e, BadParameter):
        text = _bad_value(e)
    else:
        text = _flat(e.format_message())
        if text.startswith("No such command") and e.ctx is not None:
            commands = e.ctx.command.list_commands(e.ctx)
            text += f"; commands: {', '.join(commands)}"
        elif isinstance(e, NoSuchOption):
            text += f"; see '{_help_command(e)}'"
    return text


def _missing(e: MissingParameter) -> str:
    name = _param_name(e)
    choices = _choices(e.param)
    if choices:
        return f"missing {name}: one of {', '.join(choices)}; e.g. '{_command(e)} {choices[-1]}'"
    return f"missing {name}; see '{_help_command(e)}'"


def _bad_value(e: BadParameter) -> str:
    name = _param_name(e)
    error = _validation_error(e)
    if error is None:
        # Typer says "file 'x' is a directory" / "dir 'x' is a file": the option says which.
        message = _flat(e.message)
        for kind in ("file ", "directory ", "dir ", "path "):
            message = message.removeprefix(kind)
        text = f"{name}: {message}"
        if text.endswith("is a directory"):
            text += "; pass a file"
        elif text.endswith("is a file"):
            text += "; pass a folder"
        return text
    given, kind = error.get("input"), error.get("type", "")
    choices = _choices(e.param)
    if choices:
        problem = f"not one of {', '.join(choices)}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        problem = _range_text(e.param)
    elif kind in ("int_parsing", "int_from_float", "int_type"):
        problem = "must be a whole number (digits only, e.g. 250000)"
        if _range_text(e.param) != "out of range":
            problem += f", {_range_text(e.param).removeprefix('must be ')}"
    elif kind in ("float_parsing", "float_type"):
        problem = "must be a number"
    else:
        problem = _flat(str(error.get("msg", e.message))).removeprefix("Value error, ")
    if given is None:
        return f"{name}: {problem}"
    return f"{name} {_shown(given)}: {problem}"


def _shown(value: Any) -> str:
    text = str(value)
    return text if _is_number(text) else repr(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validation_error(e: BadParameter) -> dict[str, Any] | None:
    # Typer 0.29+ validates with pydantic: the cause holds the value given and the rule.
    errors = getattr(e.__cause__, "errors", None)
    if not callable(errors):
        return None
    try:
        found = errors()
    except Exception:
        return None
    return found[0] if found and isinstance(found[0], dict) else None


def _range_text(param: Any) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"must be from {low} to {high}"
    if low is not None:
        return f"must be at least {low}"
    if high is not None:
        return f"must be at most {high}"
    return "out of range"


def _choices(param: Any) -> list[str]:
    desc = getattr(param, "type_descriptor", None)
    choices = getattr(desc, "choices", None) or getattr(
        getattr(param, "type", None), "choices", None
    )
    return [str(getattr(c, "value", c)) for c in choices] if choices else []


def _param_name(e: BadParameter) -> str:
    param = e.param
    if param is None:
        return "value"
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return opts[0]
    return str(getattr(param, "metavar", None) or param.name or "argument").upper()


def _command(e: UsageError) -> str:
    return e.ctx.command_path if e.ctx is not None else "perfmode"


def _help_command(e: UsageError) -> str:
    return f"{_command(e)} --help"


def _flat(text: str) -> str:
    """Click's messages span lines ("Choose from:\\n\\tquiet,\\n\\tperformance")."""
    return " ".join(text.split()).rstrip(".")
