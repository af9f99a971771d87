"""The one error type the library raises for anything a user can fix."""


class PerfmodeError(Exception):
    """A problem the user can act on; the message says what was wrong and what to do.

    ``exit_code`` follows the shell convention the CLI uses: 2 for bad input on the
    command line or in a config, 1 for everything else.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(PerfmodeError):
    """Bad input (a value, a file, a config key): exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
