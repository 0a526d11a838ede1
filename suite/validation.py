"""Option values checked where the command line and the Python API both reach them.

In the manner of scikit-learn's ``_parameter_constraints``: an options dataclass declares a
table of constraints, and ``validate`` refuses a bad value with one line that names it the
way the Python API does, and the command line's flag beside it::

    expected a positive integer. Received: threads=0 (--threads)

``suite.compare(threads=0)`` and ``suite compare --threads 0`` give exactly that line.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from suite.errors import UserError


@dataclass(frozen=True)
class Constraint:
    """What a value must be: ``expected`` says it in words, ``holds`` tests it."""

    expected: str
    holds: Callable[[Any], bool]
    optional: bool = False  # None is allowed (it means "the default": every core, ...)
    flag: str | None = None  # the command line's name for it


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(flag: str | None = None, optional: bool = False) -> Constraint:
    return Constraint("a positive integer", lambda v: _is_int(v) and v >= 1, optional, flag)


def non_negative_int(flag: str | None = None) -> Constraint:
    return Constraint("0 or a positive integer", lambda v: _is_int(v) and v >= 0, False, flag)


def positive_seconds(flag: str | None = None) -> Constraint:
    return Constraint("a positive number of seconds", lambda v: _is_number(v) and v > 0,
                      False, flag)


def one_of(values: Collection[str], flag: str | None = None) -> Constraint:
    return Constraint(f"one of {', '.join(values)}", lambda v: v in values, False, flag)


def parses(expected: str, parse: Callable[[Any], Any], flag: str | None = None,
           optional: bool = False) -> Constraint:
    """A value that ``parse`` accepts (it raises UserError for one it does not)."""
    def holds(value: Any) -> bool:
        try:
            parse(value)
        except UserError:
            return False
        return True

    return Constraint(expected, holds, optional, flag)


def validate(values: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> None:
    """Raise :class:`UserError` for the first value that breaks its constraint."""
    for name, constraint in constraints.items():
        value = values[name]
        if value is None and constraint.optional:
            continue
        if not constraint.holds(value):
            flag = f" ({constraint.flag})" if constraint.flag else ""
            raise UserError(f"expected {constraint.expected}. Received: {name}={value!r}{flag}")


def validate_fields(options: Any) -> None:
    """Check a dataclass instance against its ``parameter_constraints`` table."""
    validate(vars(options), type(options).parameter_constraints)
