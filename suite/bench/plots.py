"""The benchmark's figures: step time against work (with the peak's roofline) and the
share of the matmul peak each backend reaches, both against GFLOP per step, log scale.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from suite.bench.results import Bench  # noqa: E402
from suite.report.figures import STYLE, Plot, backend_colors, figure_row, to_svg  # noqa: E402
from suite.rundir import REFERENCE  # noqa: E402

MARKERS = "osD^vP*Xh<>"


def _lines(bench: Bench, column: str, ax: Axes) -> None:
    ok = bench.ok
    colors = backend_colors(REFERENCE, [n for n in bench.backends if n != REFERENCE])
    for i, name in enumerate(bench.backends):
        mine = ok[ok["backend"] == name].sort_values("gflop_per_step")
        if mine.empty:
            continue
        # one line per batch size would crowd the figure: the points are joined in order
        # of work, and the marker says which backend
        ax.plot(mine["gflop_per_step"], mine[column], marker=MARKERS[i % len(MARKERS)],
                markersize=4, linewidth=1.4 if name == REFERENCE else 1.0,
                color=colors[name], label=name)


def step_time(bench: Bench) -> Plot | None:
    if bench.ok.empty:
        return None
    peak = (bench.meta.get("peak") or {}).get("gflops")
    fig, (ax,) = figure_row(1, 7.5, 4.2)
    _lines(bench, "step_ms_median", ax)
    if peak:
        work = np.geomspace(bench.ok["gflop_per_step"].min(),
                            bench.ok["gflop_per_step"].max(), 50)
        ax.plot(work, work / peak * 1e3, color="#9ca3af", linestyle="--", linewidth=1,
                label=f"at the matmul peak ({peak:.0f} GFLOP/s)")
    ax.set(xscale="log", yscale="log", xlabel="work per step (GFLOP)",
           ylabel="median step time (ms)")
    ax.legend(fontsize=8, ncol=2)
    return Plot("step-time", "Step time against work", to_svg(fig, "step-time"),
                "Median time of one training step against its work (6 x batch x sum of "
                "fan_in x fan_out). The dashed line is the time at the measured float32 "
                "matmul peak: no backend can be below it.")


def efficiency(bench: Bench) -> Plot | None:
    if bench.ok.empty or "peak_share" not in bench.ok or bench.ok["peak_share"].isna().all():
        return None
    fig, (ax,) = figure_row(1, 7.5, 4.2)
    _lines(bench, "peak_share", ax)
    ax.axhline(1.0, color="#9ca3af", linestyle="--", linewidth=1)
    ax.set(xscale="log", xlabel="work per step (GFLOP)", ylabel="share of the matmul peak")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=8, ncol=2)
    return Plot("efficiency", "Efficiency against size", to_svg(fig, "efficiency"),
                "Achieved GFLOP/s as a share of the measured float32 matmul peak. Small "
                "networks are bound by per-step overhead (Python, dispatch, kernel launches), "
                "large ones by the matrix multiplies.")


def render_all(bench: Bench) -> dict[str, Plot]:
    """Both figures, where the benchmark has rows for them, by key."""
    with matplotlib.rc_context(STYLE):
        plots = (step_time(bench), efficiency(bench))
    return {plot.key: plot for plot in plots if plot is not None}
