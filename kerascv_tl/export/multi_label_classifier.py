"""SavedModel export of a multi-label classifier: per-class probabilities and the labels over the tuned threshold.

Outputs of both signatures (`kerascv_tl.export.serving`):
  probabilities    float32 [B, C]  independent per-class probabilities (sigmoid)
  above_threshold  bool [B, C]     probabilities >= threshold
  labels           string [B, C]   the class name where above_threshold, "" elsewhere
The threshold is the one tuned on the run's validation set (metrics.json `threshold`, the model card's
`metrics.threshold`); the card's `export` section records it with the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.export.serving import serving_archive, write_versioned

__all__ = ["OUTPUTS_DOC", "export_multi_label_classifier"]

OUTPUTS_DOC = ["probabilities", "above_threshold", "labels"]


def export_multi_label_classifier(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    threshold: float,
    crop_fraction: float = 0.875,
    card: dict | None = None,
    version: int | None = None,
    threshold_source: str = "tuned on the validation set: the grid threshold with the highest macro F1",
) -> Path:
    """Writes BASE/<version>/ atomically (next free version by default) and returns that folder."""
    image_size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the decision threshold must be in (0, 1), got {threshold}")
    names = tf.constant(list(class_names))
    spec = tf.TensorSpec([image_size, image_size, 3], tf.float32)

    def outputs(images):
        probabilities = tf.cast(model(images, training=False), tf.float32)
        above = probabilities >= tf.constant(threshold, tf.float32)
        labels = tf.where(above, tf.broadcast_to(names, tf.shape(above)), tf.constant(""))
        return {"probabilities": probabilities, "above_threshold": above, "labels": labels}

    archive = serving_archive(model, lambda image: eval_transform(image, image_size, crop_fraction), spec, outputs)
    details = {
        "image_size": image_size,
        "crop_fraction": crop_fraction,
        "threshold": float(threshold),
        "threshold_source": threshold_source,
        "outputs": {
            "probabilities": "float32 [batch, classes]: independent per-class probabilities (sigmoid)",
            "above_threshold": "bool [batch, classes]: probabilities >= threshold",
            "labels": "string [batch, classes]: the class name where above_threshold, '' elsewhere",
        },
    }
    return write_versioned(archive, base_dir, version, card, class_names, OUTPUTS_DOC, details)
