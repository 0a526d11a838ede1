"""report.md: the report's content as Markdown tables (the figures live in report.html)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from suite.report.model import Cell, Report, Table

TEMPLATE = "report.md.j2"


def cell(value: object) -> str:
    """Text that stays inside one Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def align_row(table: Table) -> str:
    """The separator row: numeric columns right-aligned."""
    numeric = table.numeric or (False,) * len(table.header)
    return "|" + "".join("---:|" if right else "---|" for right in numeric)


def verdict_md(c: Cell) -> str:
    word = f"**{c.verdict}**" if c.css in ("fail", "error") else c.verdict
    return cell(" · ".join((word, *c.detail)))


def environment() -> Environment:
    env = Environment(loader=PackageLoader("suite", "templates"), autoescape=False,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(cell=cell, align_row=align_row, verdict_md=verdict_md)
    return env


def render_markdown(report: Report) -> str:
    """The whole report.md text."""
    return environment().get_template(TEMPLATE).render(r=report)
