"""Runs a classifier over a validation source and writes every report into one folder.

Writes metrics.json (accuracy, top-5, per-class precision/recall/F1, confusion matrix),
confusion_matrix.json/.png, misclassified.png and, when training histories are given,
training_curves.png. Predictions stream batch by batch; only thumbnails of the most confident
mistakes are kept, so memory does not grow with the dataset.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerascv_tl.evaluation.classification import classification_metrics
from kerascv_tl.evaluation.plots import plot_confusion_matrix, plot_misclassified, plot_training_curves
from kerascv_tl.utils.io import atomic_write_json

MAX_MISTAKES_SHOWN = 25
THUMBNAIL_SIZE = 128


def predict_all(
    predict_batch: Callable[[np.ndarray], np.ndarray], batches: Iterable, max_mistakes: int = MAX_MISTAKES_SHOWN
):
    """(y_true, probabilities, mistakes) over batches of (inputs, labels) or (inputs, labels, display_images).

    `inputs` go to `predict_batch`; mistakes are shown from `display_images` (float [B, S, S, 3] in
    [0, 255]), which default to the inputs themselves. `mistakes` holds up to `max_mistakes`
    (confidence, index, thumbnail, true, predicted, probabilities) tuples, most confident first.
    """
    labels, probabilities, heap = [], [], []
    offset = 0
    for batch in batches:
        inputs, y = batch[0], batch[1]
        images = batch[2] if len(batch) > 2 else inputs
        probs = np.asarray(predict_batch(inputs), np.float32)
        y = np.asarray(y).astype(np.int64)
        if y.ndim == 2:  # one-hot
            y = y.argmax(axis=1)
        predicted = probs.argmax(axis=1)
        for i in np.flatnonzero(predicted != y):
            confidence = float(probs[i, predicted[i]])
            if len(heap) < max_mistakes or (heap and confidence > heap[0][0]):
                thumb = tf.image.resize(images[i], (THUMBNAIL_SIZE, THUMBNAIL_SIZE), antialias=True)
                item = (
                    confidence,
                    offset + int(i),
                    np.clip(thumb.numpy(), 0, 255).astype(np.uint8),
                    int(y[i]),
                    int(predicted[i]),
                    probs[i],
                )
                if len(heap) < max_mistakes:
                    heapq.heappush(heap, item)
                else:
                    heapq.heapreplace(heap, item)
        labels.append(y)
        probabilities.append(probs)
        offset += len(y)
    if not labels:
        raise ValueError("the validation data is empty")
    return np.concatenate(labels), np.concatenate(probabilities), sorted(heap, key=lambda m: -m[0])


def write_classification_report(
    out_dir: str | Path,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    mistakes: list,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = classification_metrics(y_true, probabilities, class_names)
    atomic_write_json(
        out / "confusion_matrix.json",
        {
            "class_names": list(class_names),
            "rows": "true",
            "columns": "predicted",
            "matrix": metrics["confusion_matrix"],
        },
    )
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), class_names, out / "confusion_matrix.png")
    if mistakes:
        plot_misclassified(
            np.stack([m[2] for m in mistakes]),
            np.array([m[3] for m in mistakes]),
            np.array([m[4] for m in mistakes]),
            np.stack([m[5] for m in mistakes]),
            class_names,
            out / "misclassified.png",
        )
    else:
        plot_misclassified(
            np.zeros((0, 8, 8, 3), np.uint8),
            np.zeros(0, int),
            np.zeros(0, int),
            np.zeros((0, len(class_names))),
            class_names,
            out / "misclassified.png",
        )
    if histories:
        plot_training_curves(list(histories), out / "training_curves.png")
    metrics.update(extra or {})
    # metrics.json last: its presence marks a complete report.
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def write_report(
    out_dir: str | Path, metrics: dict, histories: Sequence[tuple[str, Path]] = (), extra: dict | None = None
) -> dict:
    """Training curves (when there are histories) and metrics.json, merged with `extra`, in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if histories:
        plot_training_curves(list(histories), out / "training_curves.png")
    metrics.update(extra or {})
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
