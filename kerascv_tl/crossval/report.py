"""The cross-validation's figures: per-fold headline metrics, their mean and standard deviation, and the same as
a Markdown table (PARENT/cv.json, PARENT/cv.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["markdown_table", "summarize"]


def summarize(fold_metrics: Sequence[dict], metric_names: Sequence[str]) -> dict[str, dict]:
    """{metric: {"mean", "std", "folds"}} for each of `metric_names` that every fold reports as a number.

    `std` is numpy's default, the population standard deviation over the K folds (ddof=0)."""
    summary = {}
    for name in metric_names:
        values = [m.get(name) for m in fold_metrics]
        if not values or not all(_is_number(v) for v in values):
            continue
        array = np.asarray(values, np.float64)
        summary[name] = {"mean": float(array.mean()), "std": float(array.std()), "folds": list(values)}
    return summary


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _figure(value: float, integer: bool) -> str:
    return f"{value:.0f}" if integer else f"{value:.4f}"


def markdown_table(summary: dict[str, dict], folds: int, examples: int) -> str:
    """A README-ready table: metric | mean ± std | the fold values, in fold order."""
    lines = [
        f"{folds}-fold cross-validation over {examples} labelled examples (mean ± std over the folds):",
        "",
        "| metric | mean ± std | fold values |",
        "| --- | --- | --- |",
    ]
    for name, figures in summary.items():
        integer = all(isinstance(v, int) for v in figures["folds"])  # counts, e.g. num_examples
        mean = f"{figures['mean']:.1f}" if integer else f"{figures['mean']:.4f}"
        std = f"{figures['std']:.1f}" if integer else f"{figures['std']:.4f}"
        values = ", ".join(_figure(v, integer) for v in figures["folds"])
        lines.append(f"| {name} | {mean} ± {std} | {values} |")
    return "\n".join(lines) + "\n"
