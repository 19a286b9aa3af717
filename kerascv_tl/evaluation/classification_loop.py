"""Runs a classifier (a Keras model or an exported SavedModel) over a labelled source and writes the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.data.records import ImageSource
from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.evaluation.report import predict_all, write_classification_report


def evaluate_classifier(
    model: keras.Model,
    source: ImageSource,
    data_config: Any,
    out_dir: str | Path,
    class_names: Sequence[str],
    batch_size: int = 32,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
) -> dict:
    """Metrics, confusion matrix and mistakes of `model` on `source` (eval transform of `data_config`)."""
    batches = ((images.numpy(), labels.numpy()) for images, labels in eval_dataset(source, data_config, batch_size))
    y_true, probs, mistakes = predict_all(lambda x: model.predict_on_batch(x), batches)
    return write_classification_report(out_dir, y_true, probs, class_names, mistakes, histories, extra)


def evaluate_classifier_export(
    loaded: Any, source: ImageSource, class_names: Sequence[str], out_dir: str | Path, batch_size: int, card: dict
) -> dict:
    """The same report for an exported SavedModel, fed encoded image files through `serving_default`."""
    size, crop = card["export"]["image_size"], card["export"]["crop_fraction"]
    serve = loaded.signatures["serving_default"]
    if source.paths is None:
        raise DataError(
            f"{source.description}: evaluating a SavedModel needs image files (a folder or CSV); "
            "evaluate the run folder for TFDS data"
        )
    files = tf.data.Dataset.from_tensor_slices((source.paths, source.labels)).batch(
        min(batch_size, int(card.get("export", {}).get("max_batch", batch_size)))
    )  # the export refuses larger requests

    def batches():
        for paths, labels in files:
            encoded = tf.map_fn(tf.io.read_file, paths)
            # Display thumbnails for the mistakes grid go through the same decode + transform as the graph.
            shown = np.stack([eval_transform(decode_image(b), size, crop).numpy() for b in encoded])
            yield encoded, labels.numpy(), shown

    y_true, probs, mistakes = predict_all(
        lambda encoded: serve(image_bytes=encoded)["probabilities"].numpy(), batches()
    )
    return write_classification_report(
        out_dir, y_true, probs, class_names, mistakes, extra={"saved_model": card.get("name")}
    )
