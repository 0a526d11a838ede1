"""The one exception a user's mistake raises: it renders as a single clear line."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: what was received, where, what is expected, and the fix if there is one.

    The CLI prints ``str(error)`` alone (no traceback) and exits with code 2.
    """

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.hint})" if self.hint else text


class SpecError(UserError):
    """A spec that cannot be trained as written."""


class DataError(UserError):
    """Data that does not fit the spec or cannot be read."""
