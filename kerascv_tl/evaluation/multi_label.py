"""Multi-label metrics: per-class average precision, mean AP, and F1 at a decision threshold tuned for macro F1.

* Average precision (AP) of one class is the step-wise area under its precision-recall curve, computed the
  way scikit-learn's `average_precision_score` does: scores sorted from high to low, one operating point per
  distinct score (tied scores enter together), AP = sum over operating points of (R_n - R_{n-1}) * P_n with
  R_0 = 0. No interpolation. A class without positives has no AP (None).
* `map` is the mean AP over the classes with at least one positive.
* A decision threshold turns probabilities into labels (label present when probability >= threshold). It is
  tuned on the validation set: the threshold of `THRESHOLD_GRID` (0.05, 0.10, ..., 0.95) with the highest macro
  F1; ties go to the threshold nearest 0.5 (then the lower one).
* At that threshold: per-class precision, recall, F1 (0 where the denominator is 0, scikit-learn's
  `zero_division=0`); macro precision / recall / F1 average over the classes with at least one positive (as
  `map`); micro F1 pools every class's counts (false alarms on absent classes count there); exact match is
  the fraction of images whose predicted label set equals the true one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))

__all__ = [
    "THRESHOLD_GRID",
    "average_precision",
    "label_counts",
    "macro_f1",
    "multi_label_metrics",
    "plot_ap_per_class",
    "tune_threshold",
]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Step-wise AP of one class (see the module docstring); None when `y_true` has no positive."""
    y_true = np.asarray(y_true).reshape(-1) > 0.5
    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = int(y_true.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, y_true = scores[order], y_true[order]
    # The last index of each run of equal scores: one operating point per distinct score.
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(y_true)[ends]
    predicted = ends + 1
    precision = true_positives / predicted
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def label_counts(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """(true positives, false positives, false negatives), each int64 [C], at `threshold` (>= is positive)."""
    truth = np.asarray(y_true) > 0.5
    predicted = np.asarray(probabilities) >= threshold
    return (
        (truth & predicted).sum(0).astype(np.int64),
        (~truth & predicted).sum(0).astype(np.int64),
        (truth & ~predicted).sum(0).astype(np.int64),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def macro_f1(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> float | None:
    """Mean per-class F1 at `threshold` over the classes with at least one positive; None when there are none."""
    tp, fp, fn = label_counts(y_true, probabilities, threshold)
    present = (tp + fn) > 0
    if not present.any():
        return None
    return float(_ratio(2 * tp, 2 * tp + fp + fn)[present].mean())


def tune_threshold(
    y_true: np.ndarray, probabilities: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID
) -> tuple[float, dict[float, float | None]]:
    """(the grid threshold with the highest macro F1, macro F1 at every grid threshold). Ties: nearest 0.5, then
    the lower. Without any positive there is nothing to tune: 0.5."""
    scores = {float(t): macro_f1(y_true, probabilities, float(t)) for t in grid}
    candidates = [(f1, t) for t, f1 in scores.items() if f1 is not None]
    if not candidates:
        return 0.5, scores
    best = max(f1 for f1, _ in candidates)
    # A tolerance, so that float noise in equal F1s does not decide between equally good thresholds.
    tied = [t for f1, t in candidates if f1 >= best - 1e-12]
    return min(tied, key=lambda t: (abs(t - 0.5), t)), scores


def multi_label_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], threshold: float | None = None
) -> dict:
    """Every figure of the module docstring. `threshold` None: tuned on this data (`tune_threshold`)."""
    y_true = np.asarray(y_true, np.float32)
    probabilities = np.asarray(probabilities, np.float32)
    if y_true.shape != probabilities.shape or y_true.ndim != 2 or y_true.shape[1] != len(class_names):
        raise ValueError(
            f"labels {y_true.shape} and probabilities {probabilities.shape} must both be [N, {len(class_names)}]"
        )
    tuned = threshold is None
    f1_by_threshold: dict[float, float | None] = {}
    if tuned:
        threshold, f1_by_threshold = tune_threshold(y_true, probabilities)
    tp, fp, fn = label_counts(y_true, probabilities, threshold)
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    aps = [average_precision(y_true[:, c], probabilities[:, c]) for c in range(len(class_names))]
    present = (tp + fn) > 0
    truth, predicted = y_true > 0.5, probabilities >= threshold

    def mean(values: np.ndarray) -> float | None:
        return float(values[present].mean()) if present.any() else None

    per_class = {
        name: {
            "ap": aps[c],
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(tp[c] + fn[c]),
            "predicted": int(tp[c] + fp[c]),
        }
        for c, name in enumerate(class_names)
    }
    present_aps = [ap for ap in aps if ap is not None]
    return {
        "map": float(np.mean(present_aps)) if present_aps else None,
        "macro_f1": mean(f1),
        "micro_f1": float(_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "macro_precision": mean(precision),
        "macro_recall": mean(recall),
        "exact_match": float((truth == predicted).all(axis=1).mean()) if len(y_true) else None,
        "threshold": float(threshold),
        "threshold_source": (
            "tuned on this data: the grid threshold with the highest macro F1"
            if tuned
            else "given (not tuned on this data)"
        ),
        "macro_f1_by_threshold": {f"{t:.2f}": v for t, v in f1_by_threshold.items()},
        "per_class": per_class,
        "class_names": list(class_names),
        "num_examples": int(len(y_true)),
        "num_labels": int(truth.sum()),
    }


def plot_ap_per_class(metrics: dict, path: str | os.PathLike) -> Path:
    """Horizontal bars of each class's AP (and F1 at the threshold), with the mean AP; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kerascv_tl.utils.io import atomic_path

    names = list(metrics["class_names"])
    per_class = metrics["per_class"]
    aps = [per_class[n]["ap"] if per_class[n]["ap"] is not None else 0.0 for n in names]
    f1s = [per_class[n]["f1"] for n in names]
    figure = Figure(figsize=(7, 1.2 + 0.45 * len(names)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows = np.arange(len(names))
    axes.barh(rows - 0.2, aps, height=0.4, color="#2e86c1", label="average precision")
    axes.barh(rows + 0.2, f1s, height=0.4, color="#f39c12", label=f"F1 at threshold {metrics['threshold']:.2f}")
    for row, (name, ap) in enumerate(zip(names, aps)):
        text = "no positives" if per_class[name]["ap"] is None else f"{ap:.3f}"
        axes.text(min(ap, 1.0) + 0.01, row - 0.2, text, va="center", fontsize=8)
    axes.set_yticks(rows, labels=[f"{n} ({per_class[n]['support']})" for n in names])
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    mean_ap = metrics["map"]
    axes.set_title(
        f"per-class AP (support in brackets); mAP {mean_ap:.3f}"
        if mean_ap is not None
        else "per-class AP: no class has a positive"
    )
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return Path(path)
