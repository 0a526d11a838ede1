"""Formatting shared by the three reports (compare's, the kit's and bench's): a figure as
the text a table cell shows, and the table itself as plain data for the templates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: verdict -> its CSS class in the HTML reports ("no result" marks a check missing from
#: summary.csv; it is not a verdict the comparison writes)
VERDICT_CSS = {"pass": "pass", "known difference": "known", "unsupported": "unsupported",
               "fail": "fail", "error": "error", "no result": "missing"}


def sci(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "0" if value == 0 else f"{value:.1e}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} s" if value >= 1 else millis(value * 1e3)


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


def number(value: Any) -> float | None:
    """A float, or None for a missing value (None, or NaN as pandas reads an empty cell)."""
    return None if value is None or pd.isna(value) else float(value)


def ratio(value: Any) -> str:
    value = number(value)
    return "—" if value is None else f"{value:.2f}×"


def count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def hyper(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def component(raw: dict[str, Any] | str | None) -> str:
    """``adam (learning_rate=0.001, beta_1=0.9, ...)`` from a normalized spec component."""
    if not isinstance(raw, dict):
        return str(raw or "—")
    params = ", ".join(f"{k}={hyper(v)}" for k, v in raw.items() if k != "name")
    return f"{raw.get('name', '?')} ({params})" if params else str(raw.get("name", "?"))


# ---------------------------------------------------------------------------- report content




@dataclass(frozen=True)
class Table:
    """Rows of formatted cells; ``numeric`` marks right-aligned columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()

