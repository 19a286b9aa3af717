"""Probe accuracy against batch-1 latency, one labelled point per compared backbone (`kerascv-tl compare`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kerascv_tl.evaluation.plots import message_png, new_figure, save_figure

PRETRAINED_STYLE = {"marker": "o", "color": "#1f77b4", "label": "pretrained weights"}
RANDOM_STYLE = {"marker": "x", "color": "#c0392b", "label": "random weights (not pretrained)"}


def plot_accuracy_latency(
    rows: Sequence[dict], path: str | os.PathLike, max_latency_ms: float | None = None, random_key: str = "random"
) -> Path:
    """Scatter of rows with `accuracy` and `latency_ms`; rows whose `weights` is `random_key` get a red cross and
    their own legend entry. A dashed line marks `max_latency_ms`. No probed row: a PNG saying so."""
    points = [row for row in rows if row.get("accuracy") is not None]
    if not points:
        return message_png(path, "no backbone was probed")
    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    for style, is_random in ((PRETRAINED_STYLE, False), (RANDOM_STYLE, True)):
        group = [row for row in points if (row["weights"] == random_key) == is_random]
        if not group:
            continue
        axes.scatter([r["latency_ms"] for r in group], [r["accuracy"] for r in group], s=60, **style)
        for row in group:
            name = f"{row['name']} (random)" if is_random else row["name"]
            axes.annotate(name, (row["latency_ms"], row["accuracy"]), xytext=(6, 4), textcoords="offset points")
    if max_latency_ms is not None:
        axes.axvline(max_latency_ms, color="#555555", linestyle="--", linewidth=1, label=f"{max_latency_ms:g} ms bound")
    axes.set_xlabel("latency, batch 1 (ms, this machine)")
    axes.set_ylabel("linear-probe validation accuracy")
    axes.set_ylim(0.0, 1.05)
    right = max([r["latency_ms"] for r in points] + [max_latency_ms or 0.0])
    axes.set_xlim(left=0.0, right=right * 1.3 + 1e-3)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path)
