"""Reading a raw spec's fields: checks that raise a SpecError saying where (the source,
the TOML line, the dotted field) and what was expected. Worker side: standard library only.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from suite import catalogue
from suite.errors import SpecError


class FieldReader:
    """Reads fields of a raw dict and raises a SpecError that says where."""

    def __init__(self, source: str, text: str | None):
        self.source = source
        self.text = text

    def where(self, path: tuple[str | int, ...]) -> str:
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        line = locate(self.text, path) if self.text else None
        at = f", line {line}" if line else ""
        return f"{self.source}{at}: {dotted}" if dotted else self.source

    def fail(self, path: tuple[str | int, ...], message: str, hint: str | None = None):
        raise SpecError(message, where=self.where(path), hint=hint)

    def table(self, raw: Any, section: str, defaults: dict[str, Any],
              expected: str) -> dict[str, Any]:
        """A section's table (``[training]``, ``[data]``, ...) with its defaults filled in;
        a value that is no table, or a field it does not have, says where."""
        if not isinstance(raw, dict):
            self.fail((section,), f"expected {expected}. Received: {raw!r}")
        for key in raw:
            if key not in defaults:
                self.fail((section, key), f"unknown {section} field {key!r}; expected: "
                                          f"{', '.join(defaults)}")
        return {**defaults, **raw}

    def number(self, value: Any, path, *, integer: bool = False, minimum: float | None = None,
               positive: bool = False) -> Any:
        kind = "an integer" if integer else "a number"
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
            self.fail(path, f"expected {kind}. Received: {value!r}")
        if positive and value <= 0:
            self.fail(path, f"expected a positive {kind[3:] if integer else 'number'}. "
                            f"Received: {value!r}")
        if minimum is not None and value < minimum:
            self.fail(path, f"expected {kind} >= {minimum}. Received: {value!r}")
        return value if integer else float(value)

    def name(self, value: Any, choices, path, what: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected the name of {what} (a string). Received: {value!r}")
        key = catalogue.ALIASES.get(value.lower(), value.lower())
        if key not in choices:
            close = difflib.get_close_matches(key, list(choices), n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            known = ", ".join(choices)
            self.fail(path, f"unknown {what} {value!r}; expected one of: {known}", hint)
        return key

    def component(self, raw: Any, registry: dict, path, what: str) -> tuple[str, dict[str, Any]]:
        """A named part (activation, loss, optimizer): its name and every hyperparameter,
        defaults filled in."""
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict) or "name" not in raw:
            self.fail(path, f"expected {what} as a name or a table with 'name'. Received: {raw!r}")
        name = self.name(raw["name"], registry, path + ("name",), what)
        defaults = registry[name]
        params = {}
        for key in raw:
            if key == "name":
                continue
            if key not in defaults:
                allowed = ", ".join(defaults) or "none"
                self.fail(path + (key,), f"{name} has no hyperparameter {key!r}; "
                                         f"it takes: {allowed}")
        for key, default in defaults.items():
            value = raw.get(key, default)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    self.fail(path + (key,), f"expected true or false. Received: {value!r}")
            else:
                value = self.number(value, path + (key,), minimum=0.0)
            params[key] = value
        return name, params


def locate(text: str, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of a field in TOML text, for error messages (best effort).

    ``("layers", 1, "activation", "name")`` looks in the second ``[[layers]]`` table for
    ``name =``, then ``activation =``; failing that it gives the table's header line.
    """
    if not path:
        return None
    table = path[0] if len(path) > 1 else None
    index = path[1] if len(path) > 2 and isinstance(path[1], int) else None
    keys = [p for p in path[1:] if isinstance(p, str)][::-1] if table else [path[0]]
    found: dict[str, int] = {}
    current, count, header_line = None, -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            if stripped.startswith("[[") and current == table:
                count += 1
            if current == table and (index is None or count == index) and not header_line:
                header_line = number
            continue
        key = stripped.split("=")[0].strip()
        in_table = current == table and (index is None or count == index)
        if in_table and key in keys:
            found.setdefault(key, number)
        elif current is None and key == table:  # an inline value: loss = "mse"
            found.setdefault(key, number)
    for key in keys + [table]:
        if key in found:
            return found[key]
    return header_line
