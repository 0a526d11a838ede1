"""The HTML reports' Jinja environment: one self-contained page each (inline CSS, inline
SVG figures, no scripts)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from suite.report.format import Table


def num(table: Table, column: int) -> Markup:
    """The class attribute that right-aligns a numeric column."""
    numeric = column < len(table.numeric) and table.numeric[column]
    return Markup(' class="num"') if numeric else Markup("")


def environment() -> Environment:
    env = Environment(loader=PackageLoader("suite", "templates"),
                      autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = num
    return env
