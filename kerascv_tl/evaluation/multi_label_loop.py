"""Runs a multi-label classifier (a Keras model or an exported SavedModel) over a labelled source and writes
the report: metrics.json (`kerascv_tl.evaluation.multi_label`), ap_per_class.png and, after training, the
training curves.

A Keras model is fed the evaluation pipeline's images (`eval_transform`); a SavedModel is fed the encoded files
through `serving_default`, which runs the same decode and transform in its graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.multi_label import MultiLabelSource
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.evaluation.multi_label import multi_label_metrics, plot_ap_per_class
from kerascv_tl.evaluation.report import write_report

__all__ = ["evaluate_multi_label", "evaluate_multi_label_export", "predict_multi_label", "write_multi_label_report"]


def predict_multi_label(predict_batch: Callable[[Any], np.ndarray], batches: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """(labels float32 [N, C], probabilities float32 [N, C]) over batches of (inputs, labels)."""
    labels, probabilities = [], []
    for inputs, y in batches:
        labels.append(np.asarray(y, np.float32))
        probabilities.append(np.asarray(predict_batch(inputs), np.float32))
    if not labels:
        raise ValueError("the evaluation data is empty")
    return np.concatenate(labels), np.concatenate(probabilities)


def write_multi_label_report(
    out_dir: str | Path,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    threshold: float | None = None,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
) -> dict:
    """ap_per_class.png, then metrics.json (last: its presence marks a complete report); the metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = multi_label_metrics(y_true, probabilities, class_names, threshold)
    plot_ap_per_class(metrics, out / "ap_per_class.png")
    return write_report(out, metrics, histories, extra)


def evaluate_multi_label(
    model: keras.Model,
    source: MultiLabelSource,
    data_config: Any,
    out_dir: str | Path,
    class_names: Sequence[str],
    batch_size: int = 32,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
    threshold: float | None = None,
) -> dict:
    """The report of `model` on `source`; `threshold` None tunes it on `source` (the validation set)."""
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    batches = (
        (images, labels.numpy()) for images, labels in eval_dataset(source, data_config, batch_size, one_hot=False)
    )
    y_true, probabilities = predict_multi_label(lambda images: infer(images).numpy(), batches)
    return write_multi_label_report(out_dir, y_true, probabilities, class_names, threshold, histories, extra)


def evaluate_multi_label_export(
    loaded: Any, source: MultiLabelSource, out_dir: str | Path, batch_size: int, card: dict
) -> dict:
    """The report of an exported SavedModel at the threshold it serves (the card's), not one tuned here."""
    serve = loaded.signatures["serving_default"]
    files = tf.data.Dataset.from_tensor_slices((source.paths, source.labels)).batch(
        min(batch_size, int(card.get("export", {}).get("max_batch", batch_size)))
    )  # the export refuses larger requests
    batches = ((tf.map_fn(tf.io.read_file, paths), labels.numpy()) for paths, labels in files)
    y_true, probabilities = predict_multi_label(
        lambda encoded: serve(image_bytes=encoded)["probabilities"].numpy(), batches
    )
    return write_multi_label_report(
        out_dir,
        y_true,
        probabilities,
        card["labels"],
        card["export"]["threshold"],
        extra={"saved_model": card.get("name")},
    )
