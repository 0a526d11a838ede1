"""A compare run's report.md and its self-contained report.html.

Both texts are rendered before either file is written, and each file is written to a
temporary file in the run directory and moved into place, so a failure never leaves a
half-written report.

Usage::

    from suite.compare.render import render
    md_path, html_path = render(Path("reports/latest"))
"""

from __future__ import annotations

from pathlib import Path

from suite.compare import plots
from suite.compare.report import Cell, Report, build
from suite.compare.results import Run
from suite.files import atomic_write_text
from suite.report import html, markdown
from suite.report.figures import Plot
from suite.report.format import VERDICT_CSS
from suite.rundir import VERDICTS


def verdict_md(c: Cell) -> str:
    word = f"**{c.verdict}**" if c.css in ("fail", "error") else c.verdict
    return markdown.cell(" · ".join((word, *c.detail)))


def render_markdown(report: Report) -> str:
    """The whole report.md text."""
    env = markdown.environment()
    env.filters["verdict_md"] = verdict_md
    return env.get_template("report.md.j2").render(r=report)


def render_html(report: Report, figures: dict[str, Plot]) -> str:
    """The whole report.html text; ``figures`` are the SVG figures by key."""
    verdicts = [(v, VERDICT_CSS[v]) for v in VERDICTS]
    template = html.environment().get_template("report.html.j2")
    return template.render(r=report, plots=figures, verdicts=verdicts)


def render(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``run_dir`` and return their paths.

    Raises :class:`suite.errors.UserError` when ``run_dir`` has no readable run.json;
    every other file of the run is optional and a missing one leaves its section empty.
    """
    run = Run(Path(run_dir))
    report = build(run)
    md_text = render_markdown(report)
    html_text = render_html(report, plots.render_all(run))
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    atomic_write_text(md_path, md_text)
    atomic_write_text(html_path, html_text)
    return md_path, html_path
