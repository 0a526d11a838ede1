"""The run's reports: report.md and one self-contained report.html.

Modelled on coverage.py's html report: :mod:`suite.report.model` loads the run directory
into plain dataclasses and derives what to show, :mod:`suite.report.plots` draws the
figures as SVG, and two Jinja templates shipped in ``suite/templates`` render the text.
Both texts are rendered before either file is written, and each file is written to a
temporary file in the run directory and moved into place, so a failure never leaves a
half-written report.

Usage::

    from suite.report import render
    md_path, html_path = render(Path("reports/latest"))
"""

from __future__ import annotations

from pathlib import Path

from suite.rundir import atomic_write_text

__all__ = ["render"]


def render(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``run_dir`` and return their paths.

    Raises :class:`suite.errors.UserError` when ``run_dir`` has no readable run.json;
    every other file of the run is optional and a missing one leaves its section empty.
    """
    from suite.report import html, markdown, model, plots

    run_dir = Path(run_dir)
    run = model.load(run_dir)
    report = model.build(run)
    md_text = markdown.render_markdown(report)
    html_text = html.render_html(report, plots.render_all(run))
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, md_text)
    atomic_write_text(html_path, html_text)
    return md_path, html_path
