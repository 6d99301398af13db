"""PNG plots of ``tierstore bench --curves``: one per curve, ``<stem>-curve-<name>.png`` next to the JSON.

Each plot has every series of the curve on the same axes (tierstore solid, ``raw:`` floors dashed, ``peer:``
dotted, ceilings dash-dotted). Optional like :mod:`tierstore.bench.plots`: without matplotlib nothing is written
and one line says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tierstore.bench.plots import MISSING

__all__ = ["curve_plot_path", "write_curve_plots"]


def curve_plot_path(json_path: str, name: str) -> str:
    stem, _ = os.path.splitext(json_path)
    return f"{stem}-curve-{name}.png"


def _style(label: str) -> str:
    kind = label.split(":", 1)[0]
    if kind == "raw":
        return "--"
    if kind == "peer":
        return ":"
    if kind == "tierstore":
        return "-"
    return "-."


def write_curve_plots(result: Mapping[str, Any], json_path: str) -> tuple[list[str], str | None]:
    """Write one PNG per curve of ``result``; returns (paths written, a notice or ``None``)."""
    curves = [c for c in result.get("curves", []) if c.get("series")]
    if not curves:
        return [], "plots: no curve has a series; no PNG written"
    try:
        import matplotlib
    except ImportError:
        return [], MISSING
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for c in curves:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        xs = c["x"]
        for label, values in c["series"].items():
            pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], _style(label), marker="o", markersize=3,
                        linewidth=1.2, label=label.replace("tierstore:", "ts:"))
        if c.get("log_x"):
            ax.set_xscale("log")
        if c["metric"] != "hit_ratio":
            ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:,}" for x in xs], fontsize=7)
        if c.get("log_x"):
            ax.minorticks_off()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel(c["axis"], fontsize=8)
        ax.set_ylabel(c["unit"], fontsize=8)
        ax.set_title(f"{c['name']}: {c['description']}", fontsize=8, loc="left")
        ax.grid(True, which="major", linewidth=0.3)
        ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        path = curve_plot_path(json_path, c["name"])
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths, None
