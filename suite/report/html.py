"""report.html: one self-contained page (inline CSS, inline SVG figures, no scripts)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from suite.report.model import CSS, Report, Table
from suite.report.plots import Plot

TEMPLATE = "report.html.j2"
LEGEND = ("pass", "known difference", "unsupported", "fail", "error")


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


def render_html(report: Report, plots: dict[str, Plot]) -> str:
    """The whole report.html text; ``plots`` are the SVG figures by key."""
    verdicts = [(v, CSS[v]) for v in LEGEND]
    template = environment().get_template(TEMPLATE)
    return template.render(r=report, plots=plots, verdicts=verdicts)
