"""A compare run's figures: loss curves, differences against the reference, each
backend's error against its variant and the noise, per-layer gradient errors, step times.

Each function takes a loaded :class:`~suite.compare.results.Run` and returns a
:class:`~suite.report.figures.Plot`, or None when the run has nothing to draw.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from suite.compare.results import Run
from suite.report.figures import STYLE, Plot, backend_colors, figure_row, to_svg

# NOTE: a log axis cannot show 0 (exact agreement happens: identical kernels, same
# summation order). Zeros are drawn at a floor one decade under the smallest nonzero
# value, and never above these limits, well under each dtype's machine epsilon, so that
# a real difference is never hidden under the floor.
FLOOR = {"float32": 1e-12, "float64": 1e-20}


def colors(run: Run) -> dict[str, str]:
    """A fixed color per backend: the reference black, the others from PALETTE."""
    return backend_colors(run.reference, run.compared)


def loss_curves(run: Run) -> Plot | None:
    losses = run.losses
    names = [n for n in [run.reference, *run.compared] if (losses["backend"] == n).any()]
    if not names:
        return None
    fig, ax = figure_row(1, 7.5, 3.0)
    for name in names:
        mine = losses[losses["backend"] == name].sort_values("step")
        # the reference wide and pale underneath, so agreeing backends sit on top of it
        look = {"lw": 3.2, "alpha": 0.35, "zorder": 1} if name == run.reference else {
            "lw": 1.4, "alpha": 0.95, "zorder": 2}
        ax[0].plot(mine["step"], mine["loss"], color=colors(run)[name], label=name, **look)
    _epochs(ax[0], losses)
    ax[0].set(xlabel="step", ylabel="loss (batch mean)")
    ax[0].legend(loc="upper right", ncol=min(len(names), 4))
    caption = ("Training loss of every backend at every step (the batch's own loss before its "
               "update). The reference is the wide grey-black line; lines on top of it agree; "
               "dotted verticals mark epochs.")
    return Plot("loss-curves", "Loss curves", to_svg(fig, "loss-curves"), caption)


def differences(run: Run) -> Plot | None:
    comp = run.comparison
    if comp.empty:
        return None
    panels = [(title, {name: series(name) for name in [*run.compared, "tolerance"]})
              for title, series in _difference_panels(run)]
    found = [v.to_numpy(float) for _, lines in panels for v in lines.values() if v is not None]
    floor = floor_for(np.concatenate(found) if found else np.array([]), run.dtype)
    fig, axes = figure_row(3, 10.5, 3.2)
    clipped = 0
    for ax, (title, lines) in zip(axes, panels, strict=True):
        for name, values in lines.items():
            if values is None or values.empty:
                continue
            if name == "tolerance":
                ax.step(values.index, values.to_numpy(float), where="post", ls="--", lw=1,
                        color="#6b7280", label="tolerance")
                continue
            below = int((values < floor).sum())
            clipped += below
            ax.plot(values.index, np.maximum(values.to_numpy(float), floor), marker=".",
                    ms=3, lw=1.2, color=colors(run)[name], label=name)
            if below:
                _mark_floor(ax, floor)
        ax.set_yscale("log")
        ax.set(title=title, xlabel="step")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    caption = ("Difference against the reference per step, log scale; dashed: the tolerance "
               "(for the loss, the relative tolerance × the largest |reference loss| so "
               "far). Parameters and gradients show the worst tensor at each step.")
    if clipped:
        caption += (f" {clipped} value(s) below {floor:.0e} (exact agreement included) are "
                    f"drawn at that floor.")
    return Plot("differences", "Difference against the reference", to_svg(fig, "differences"),
                caption)


def noise_curves(run: Run) -> Plot | None:
    """Per backend: its parameters' error against the baseline, against its ledger
    variant, and the measured noise, over the steps (the worst tensor at each step)."""
    comp = run.comparison
    params = comp[(comp["kind"] == "param") & comp["backend"].isin(run.compared)]
    if params.empty or not params["noise"].notna().any():
        return None  # a run without a noise run: the differences figure says it all
    names = [n for n in run.compared if (params["backend"] == n).any()]
    fig, axes = figure_row(len(names), min(3.4 * len(names), 10.5), 2.8)
    for ax, name in zip(axes, names, strict=True):
        mine = params[params["backend"] == name].groupby("step")
        # the variant wide and pale underneath: where the backend's error is the same
        # against both (a convention equal for this spec), the two lines lie on each other
        lines = (("against its variant", mine["variant_rel_l2_error"].max(), "#c084fc", "-",
                  3.2),
                 ("against the reference", mine["rel_l2_error"].max(), colors(run)[name], "-",
                  1.3),
                 ("noise", mine["noise"].max(), "#111827", ":", 1.2),
                 ("tolerance", mine["tolerance"].max(), "#6b7280", "--", 1.0))
        found = np.concatenate([v.to_numpy(float) for _, v, *_ in lines])
        floor = floor_for(found, run.dtype)
        for label, values, color, style, width in lines:
            if values.notna().any():
                ax.plot(values.index, np.maximum(values.to_numpy(float), floor), ls=style,
                        lw=width, color=color, label=label)
        ax.set_yscale("log")
        ax.set(title=name, xlabel="step")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes),
                          key=lambda found: len(found[1]))
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    caption = ("Each backend's parameters against the baseline (the exact answer of a "
               "float32 run, the reference of a float64 one), against its ledger variant "
               "where it has one, and the measured noise: how far a correct implementation "
               "is; dashed, the tolerance. The worst tensor at each step, log scale.")
    return Plot("noise-curves", "Error, variant and noise", to_svg(fig, "noise-curves"),
                caption)


def floor_for(values: np.ndarray, dtype: str) -> float:
    """Where values too small for the log axis (zeros) are drawn; see FLOOR."""
    positive = values[np.isfinite(values) & (values > 0)]
    limit = FLOOR.get(dtype, FLOOR["float32"])
    if positive.size == 0:
        return limit
    return max(limit, 10.0 ** (np.floor(np.log10(positive.min())) - 1))


def _difference_panels(run: Run) -> list[tuple[str, Callable[[str], pd.Series | None]]]:
    comp = run.comparison

    def worst(kind: str) -> Callable[[str], pd.Series | None]:
        rows = comp[comp["kind"] == kind]

        def series(name: str) -> pd.Series | None:
            if name == "tolerance":
                return rows.groupby("step")["tolerance"].max()
            return rows[rows["backend"] == name].groupby("step")["rel_l2_error"].max()
        return series

    def loss(name: str) -> pd.Series | None:
        rows = comp[comp["kind"] == "loss"]
        if name != "tolerance":
            return rows[rows["backend"] == name].groupby("step")["max_abs_diff"].max()
        ref = run.losses[run.losses["backend"] == run.reference].set_index("step")["loss"]
        tol = rows.groupby("step")["tolerance"].max()
        # errors are relative to the largest the reference's loss has been so far
        return (tol * ref.abs().cummax().reindex(tol.index)).dropna()

    return [("parameters: rel. L2 error", worst("param")),
            ("gradients: rel. L2 error", worst("grad")),
            ("loss: |difference|", loss)]


def layer_gradients(run: Run) -> Plot | None:
    grads = run.comparison[run.comparison["kind"] == "grad"]
    grads = grads[grads["backend"].isin(run.compared)]
    if grads.empty:
        return None
    tensors = list(dict.fromkeys(grads["tensor"]))
    names = [n for n in run.compared if (grads["backend"] == n).any()]
    floor = floor_for(grads["rel_l2_error"].to_numpy(float), run.dtype)
    fig, ax = figure_row(1, 7.5, 0.9 + 0.42 * len(tensors))
    height = 0.7 / max(len(names), 1)
    first_step = grads["step"].min()
    for j, name in enumerate(names):
        mine = grads[grads["backend"] == name]
        first = mine[mine["step"] == first_step].set_index("tensor")["rel_l2_error"]
        worst = mine.groupby("tensor")["rel_l2_error"].max()
        y = np.arange(len(tensors)) - 0.35 + height * (j + 0.5)
        kw = {"color": colors(run)[name], "ls": "none"}
        ax[0].plot(np.maximum(first.reindex(tensors).to_numpy(float), floor), y, "o", ms=5,
                   **kw)
        ax[0].plot(np.maximum(worst.reindex(tensors).to_numpy(float), floor), y, "4", ms=10,
                   mew=1.6, **kw)
        ax[0].plot([], [], "s", color=kw["color"], label=name)
    tolerances = (("step 0 tolerance", "--", grads[grads["step"] == first_step]),
                  ("later-step tolerance", ":", grads[grads["step"] != first_step]))
    for label, style, rows in tolerances:
        if not rows.empty:
            ax[0].axvline(rows["tolerance"].max(), ls=style, lw=1, color="#6b7280", label=label)
    ax[0].plot([], [], "o", color="#374151", label="step 0")
    ax[0].plot([], [], "4", ms=10, mew=1.6, color="#374151", label="worst step")
    ax[0].set_xscale("log")
    ax[0].set_yticks(range(len(tensors)), tensors)
    ax[0].invert_yaxis()
    ax[0].set(xlabel="relative L2 error of the gradient")
    fig.legend(loc="outside right upper", fontsize=8)
    caption = ("Per-tensor gradient error against the reference: dots at step 0, tri-marks "
               "the worst over all steps.")
    if (grads["rel_l2_error"] < floor).any():
        caption += f" Values below {floor:.0e} (exact agreement) are drawn at that floor."
    return Plot("layer-gradients", "Per-layer gradient difference",
                to_svg(fig, "layer-gradients"), caption)


def timing_bars(run: Run) -> Plot | None:
    rows = [t for t in run.timings if t.step_ms_median is not None]
    if not rows:
        return None
    fig, ax = figure_row(1, 7.5, 0.8 + 0.38 * len(rows))
    y = np.arange(len(rows))
    medians = [t.step_ms_median for t in rows]
    iqr = [(t.step_ms_iqr or 0.0) / 2 for t in rows]
    ax[0].barh(y, medians, xerr=iqr, height=0.6, capsize=3, ecolor="#374151",
               color=[colors(run).get(t.backend, "#9ca3af") for t in rows])
    for yi, median, half in zip(y, medians, iqr, strict=True):
        ax[0].annotate(f"{median:.3g} ms", (median + half, yi), xytext=(5, 0),
                       textcoords="offset points", va="center", fontsize=8)
    ax[0].set_yticks(y, [t.backend for t in rows])
    ax[0].invert_yaxis()
    ax[0].set_xlim(0, max(m + h for m, h in zip(medians, iqr, strict=True)) * 1.25)
    ax[0].set_axisbelow(True)
    ax[0].set(xlabel="median training step time (ms)")
    ax[0].grid(axis="y", visible=False)
    caption = ("Median time of one training step after warm-up, each backend's fastest "
               "idiomatic loop; the error bar spans the interquartile range (centred on the "
               "median).")
    return Plot("timing-bars", "Step time", to_svg(fig, "timing-bars"), caption)


PLOTS: dict[str, Callable[[Run], Plot | None]] = {
    "loss-curves": loss_curves,
    "differences": differences,
    "noise-curves": noise_curves,
    "layer-gradients": layer_gradients,
    "timing-bars": timing_bars,
}


def render_all(run: Run) -> dict[str, Plot]:
    """Every figure the run has data for, by key."""
    with matplotlib.rc_context(STYLE):
        found = {key: make(run) for key, make in PLOTS.items()}
    return {key: plot for key, plot in found.items() if plot is not None}


def _mark_floor(ax: Axes, floor: float) -> None:
    ax.axhline(floor, color="#9ca3af", lw=0.8, ls=(0, (1, 2)), zorder=0)
    ax.annotate("0 (exact)", (1, floor), xycoords=("axes fraction", "data"), xytext=(-3, 0),
                textcoords="offset points", ha="right", va="center", fontsize=7,
                color="#4b5563", zorder=5,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#d1d5db", "lw": 0.5})


def _epochs(ax: Axes, losses: pd.DataFrame) -> None:
    if "epoch" not in losses or losses.empty:
        return
    starts = losses.groupby("epoch")["step"].min().sort_index().to_numpy()[1:]
    for step in starts:
        ax.axvline(step - 0.5, ls=":", lw=0.8, color="#9ca3af")
