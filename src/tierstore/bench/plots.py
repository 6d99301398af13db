"""PNG plots of a run, written next to its JSON: each tierstore row's ratios to its floors and peers, per scenario.

Optional: matplotlib comes with the ``bench`` extra. Without it :func:`write_plots` writes nothing and says so in
one line; the table and the JSON do not depend on it. The Agg backend is used, so no display is needed.

Reading the plot: one panel per scenario, one bar per tierstore system and floor or peer it was compared with in
the same run (blue: a ``raw:`` floor, orange: a ``peer:``); the bar is tierstore's time per op ÷ the other's (p50,
or throughput for concurrent scenarios), on a log scale. The dashed line at 1 is parity: bars left of it are
tierstore being faster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MISSING", "plot_paths", "write_plots"]

MISSING = "plots: matplotlib is not installed (pip install 'tierstore[bench]'); no PNG written"


def plot_paths(json_path: str) -> dict[str, str]:
    """Where the plots of ``json_path`` go: ``<stem>-ratios.png`` beside it."""
    stem, _ = os.path.splitext(json_path)
    return {"ratios": f"{stem}-ratios.png"}


def _ratio_panels(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, dict[str, float]]]]:
    panels: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for row in rows:
        ratios = row.get("ratios") or {}
        usable = {k: float(v) for k, v in ratios.items() if isinstance(v, int | float) and v > 0}
        if usable:
            panels.setdefault(str(row["scenario"]), []).append((str(row["system"]), usable))
    return panels


def write_plots(rows: Sequence[Mapping[str, Any]], json_path: str) -> tuple[list[str], str | None]:
    """Write the plots of ``rows``; returns (paths written, a notice or ``None``)."""
    panels = _ratio_panels(rows)
    if not panels:
        return [], "plots: no row has a ratio to a floor; no PNG written"
    try:
        import matplotlib
    except ImportError:
        return [], MISSING
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = plot_paths(json_path)["ratios"]
    sizes = [sum(len(r) for _, r in systems) for systems in panels.values()]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 0.6 * len(panels) + 0.17 * sum(sizes)), squeeze=False,
        gridspec_kw={"height_ratios": [max(n, 2) for n in sizes]},
    )
    colors = {"raw": "tab:blue", "peer": "tab:orange"}
    for ax, (scenario, systems) in zip(axes[:, 0], panels.items(), strict=True):
        labels, values, tints = [], [], []
        for name, ratios in systems:
            for other, value in ratios.items():
                labels.append(f"{name.split(':', 1)[1]}  vs {other}")
                values.append(value)
                tints.append(colors.get(other.split(":", 1)[0], "tab:gray"))
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, values, color=tints, height=0.7)
        for y, v in zip(ys, values, strict=True):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=6)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=6)
        ax.set_xscale("log")
        ax.set_title(f"{scenario}: tierstore time per op ÷ the other's (< 1: tierstore faster; "
                     "blue: raw floor, orange: peer)", fontsize=7, loc="left")
        ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return [path], None
