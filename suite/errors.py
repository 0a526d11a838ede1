"""The one exception a user's mistake raises (it renders as a single clear line), and the
one a stop signal raises. Worker side: standard library only."""

from __future__ import annotations

import signal


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


class DiskFull(UserError):
    """A write that did not fit (no space, quota, file-size limit): it names the file, the
    bytes it needed and what was left. Nothing half-written stays behind."""


class Interrupted(KeyboardInterrupt):
    """A signal that stops a run as Ctrl-C does (SIGINT, SIGTERM, SIGHUP).

    A KeyboardInterrupt, so that it takes Ctrl-C's path: the current worker is killed, the
    run is marked interrupted and what finished is kept. The CLI exits with 128 + signum.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(self.signum)  # args hold the number: it pickles

    def __str__(self) -> str:
        return signal.Signals(self.signum).name
