"""Figures shared by the reports: matplotlib (Agg, no pyplot state) rendered to inline
SVG strings, one style, and a fixed color per backend across figures.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REFERENCE_COLOR = "#111827"
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04")
STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, readable in the DOM
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9ca3af",
    "legend.frameon": False,
}



@dataclass(frozen=True)
class Plot:
    key: str  # the section's anchor, and the SVG's id
    title: str
    svg: str  # an <svg> element, no XML prologue, scales to its container
    caption: str


def backend_colors(reference: str, others: list[str]) -> dict[str, str]:
    """``reference`` black, ``others`` from PALETTE in their order."""
    found = {reference: REFERENCE_COLOR}
    for i, name in enumerate(others):
        found[name] = PALETTE[i % len(PALETTE)]
    return found


def to_svg(fig: Figure, key: str) -> str:
    """The figure as an inline <svg>: ids prefixed with ``key``, no fixed size.

    Several SVGs share one HTML document, so every id (and each reference to it) is
    namespaced; a fixed hash salt keeps the output the same from run to run.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "fnn-suite"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r'(url\(#|href="#)([^")]+)', rf"\1{key}-\2", text)
    head, rest = text.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return f'{head} id="svg-{key}" role="img" aria-label="{key}">{rest}'.strip()


def figure_row(panels: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes side by side, laid out by matplotlib."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, panels, squeeze=False)[0])
