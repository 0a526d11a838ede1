"""``suite compare``: train one spec with every backend, in lockstep, and judge each against
the NumPy reference.

:mod:`plan` (its options, the workers to run, the plan files), :mod:`session` (the run:
one worker process per backend, one after another), :mod:`worker` (one backend in its
own process: the timing run and the lockstep run), :mod:`comparison` (the tables and the
verdicts), :mod:`results` (a finished run as typed records and DataFrames),
:mod:`report`, :mod:`plots` and :mod:`render` (report.md and report.html), :mod:`console`
(the terminal). The run directory's contract is :mod:`suite.rundir`.

Importing this package loads nothing else: the worker runs in environments that have
NumPy alone.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    """``suite.compare`` is this package and the Python API's function at once: importing
    any of its modules makes ``suite.compare`` the package, so the package, called, runs
    :func:`suite.api.compare` (see there for the arguments)."""

    def __call__(self, *args, **kwargs):
        from suite.api import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
