"""Matplotlib figures of the report (object API only: no pyplot state, no GUI backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dlhw.figures import DPI, legend, new_figure


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as a 256-colour PNG (a third of the size of a full-colour one; plots
    have few colours, so nothing visible is lost)."""
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            path, format="PNG", optimize=True)
    return path


def curves_figure(
    series: Sequence[tuple],
    ylabel: str,
    title: str,
    xlabel: str = "epoch",
    logy: bool = False,
) -> Figure:
    """Overlaid curves: one (label, x, y) per run, or (label, x, mean, sd) for repeated runs,
    drawn as the mean with a band of ± one standard deviation."""
    wide = len(series) > 8
    fig = new_figure(9.0 if wide else 6.5, 4.0)
    ax = fig.add_subplot()
    for label, x, y, *sd in series:
        (line,) = ax.plot(x, y, marker="o" if len(x) <= 30 else None, markersize=3, linewidth=1.4,
                          label=label)
        if sd and sd[0] is not None:
            mean, spread = np.asarray(y, dtype=float), np.asarray(sd[0], dtype=float)
            ax.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.2,
                            linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    legend(ax, len(series))
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], errors: Sequence[float] | None,
               ylabel: str, title: str) -> Figure:
    """Horizontal bars (labels stay readable however long), values printed at the bar ends."""
    n = len(labels)
    longest = max((len(s) for s in labels), default=10)
    fig = new_figure(min(4.0 + 0.075 * longest, 12.0) + 3.0, max(1.6, 0.45 * n + 1.0))
    ax = fig.add_subplot()
    y = np.arange(n)
    ax.barh(y, values, xerr=errors if errors and any(e > 0 for e in errors) else None,
            color="tab:blue", alpha=0.8, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    errs = list(errors) if errors else [0.0] * n
    top = max((v + e for v, e in zip(values, errs, strict=True)), default=1.0)
    ax.set_xlim(0, 1.18 if top <= 1.0 else top * 1.2)
    for yi, v, e in zip(y, values, errs, strict=True):
        text = f"{v * 100:.2f}%" if top <= 1.0 else f"{v:.3g}"
        if e > 0:
            text += f" ± {e * 100:.2f}" if top <= 1.0 else f" ± {e:.2g}"
        ax.text(v + e + 0.01 * ax.get_xlim()[1], yi, text, va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def signal_comparison_figure(runs: Sequence[tuple[str, dict]]) -> Figure:
    """Pre-activation variance at initialisation across depth, one line per run."""
    longest = max((len(s["layers"]) for _, s in runs), default=1)
    same = len({tuple(s["layers"]) for _, s in runs}) == 1
    layers = runs[0][1]["layers"] if same else [""] * longest
    fig = new_figure(max(6.5, 0.55 * longest + 3.5), 4.2)
    ax = fig.add_subplot()
    for label, s in runs:
        init = s["records"][0]["variance"]
        ax.plot(np.arange(1, len(init) + 1), init, marker="o", label=label)
    x = np.arange(1, longest + 1)
    ticks = [f"{i}: {n}" if n else str(i) for i, n in zip(x, layers, strict=True)]
    ax.set_xticks(x, ticks, rotation=35 if same else 0, ha="right" if same else "center", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("variance of pre-activations at init")
    ax.set_title("Signal propagation at initialisation")
    ax.grid(alpha=0.3, which="both")
    legend(ax, len(runs))
    return fig


def filters_figure(weight, title: str) -> Figure:
    """Conv filters (out, in, kh, kw) as a grid of tiles (colour for RGB input, else grey)."""
    w = np.asarray(weight, dtype=np.float32)
    rgb = w.shape[1] == 3
    n = w.shape[0]
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = new_figure(1.1 * cols + 0.4, 1.1 * rows + 0.6)
    fig.suptitle(title, fontsize=10)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        tile = w[i].transpose(1, 2, 0) if rgb else w[i, 0]
        lo, hi = tile.min(), tile.max()
        tile = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        ax.imshow(tile, cmap=None if rgb else "gray", interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    return fig
