"""Errors shared by every part: each one carries a message a user can act on."""

from __future__ import annotations


class CliError(Exception):
    """An error the user can act on: printed as one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SourceError(Exception):
    """A kernel source file that cannot be read or understood at all."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.reason = message
