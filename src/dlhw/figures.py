"""Matplotlib basics shared by the report (dlhw.report.plots) and the TensorBoard dashboards
(dlhw.lit): a figure without pyplot state or GUI backend, its legend, and the signal-propagation
figure that both draw."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg (no pyplot, no GUI), laid out to fit its labels."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def legend(ax, n: int) -> None:
    """The legend of ``n`` lines: inside the axes, or beside them when there are many."""
    if n == 0:
        return
    if n <= 8:
        ax.legend(fontsize=8, loc="best")
    else:  # many runs: legend beside the axes, smaller
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def signal_figure(signal: dict, title: str = "Pre-activation variance across depth") -> Figure:
    """Variance of each layer's pre-activations vs depth: one line per record (init, epochs)."""
    layers, records = signal["layers"], signal["records"]
    fig = new_figure(max(6.0, 0.55 * len(layers) + 3.0), 4.2)
    ax = fig.add_subplot()
    x = np.arange(1, len(layers) + 1)
    for rec in records:
        epoch = rec.get("epoch")
        label = "initialisation" if epoch is None else f"after epoch {epoch}"
        style = "--" if epoch is None else "-"
        ax.plot(x, rec["variance"], style, marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{i}: {n}" for i, n in zip(x, layers, strict=True)], rotation=35, ha="right", fontsize=8)
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("variance of pre-activations")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    legend(ax, len(records))
    return fig
