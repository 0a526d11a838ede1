"""The Markdown reports' Jinja environment and its filters."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from suite.report.format import Table


def cell(value: object) -> str:
    """Text that stays inside one Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def align_row(table: Table) -> str:
    """The separator row: numeric columns right-aligned."""
    numeric = table.numeric or (False,) * len(table.header)
    return "|" + "".join("---:|" if right else "---|" for right in numeric)


def environment() -> Environment:
    env = Environment(loader=PackageLoader("suite", "templates"), autoescape=False,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(cell=cell, align_row=align_row)
    return env
