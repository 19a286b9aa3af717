"""Multi-label classifier export: per-class probabilities and the labels over the tuned threshold.

Serving outputs (`kerascv_tl.export.serving`):
  probabilities    float32 [B, C]  independent per-class probabilities (sigmoid)
  above_threshold  bool [B, C]     probabilities >= threshold
  labels           string [B, C]   the class name where above_threshold, "" elsewhere
The threshold is the one tuned on the run's validation set (metrics.json `threshold`, the model card's
`metrics.threshold`); the card's `export` section records it with the outputs. prepare is `eval_transform`, as
for single-label classifiers; the network returns the probabilities, finish applies the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.export.classifier import classifier_network
from kerascv_tl.export.savedmodel import write_savedmodel
from kerascv_tl.export.steps import ServingSteps

__all__ = ["OUTPUTS_DOC", "export_multi_label_classifier", "multi_label_details", "multi_label_steps"]

OUTPUTS_DOC = ["probabilities", "above_threshold", "labels"]
TUNED = "tuned on the validation set: the grid threshold with the highest macro F1"


def multi_label_details(
    model: keras.Model, class_names: Sequence[str], threshold: float, crop_fraction: float, threshold_source: str
) -> dict:
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the decision threshold must be in (0, 1), got {threshold}")
    return {
        "image_size": int(model.input_shape[1]),
        "crop_fraction": crop_fraction,
        "threshold": float(threshold),
        "threshold_source": threshold_source,
        "outputs": {
            "probabilities": "float32 [batch, classes]: independent per-class probabilities (sigmoid)",
            "above_threshold": "bool [batch, classes]: probabilities >= threshold",
            "labels": "string [batch, classes]: the class name where above_threshold, '' elsewhere",
        },
    }


def multi_label_steps(class_names: Sequence[str], details: dict) -> ServingSteps:
    size, crop, threshold = int(details["image_size"]), float(details["crop_fraction"]), float(details["threshold"])
    names = tf.constant(list(class_names))

    def finish(raw, prepared):
        probabilities = raw["probabilities"]
        above = probabilities >= tf.constant(threshold, tf.float32)
        labels = tf.where(above, tf.broadcast_to(names, tf.shape(above)), tf.constant(""))
        return {"probabilities": probabilities, "above_threshold": above, "labels": labels}

    return ServingSteps(
        image_size=size,
        prepare=lambda image: {"pixels": eval_transform(image, size, crop)},
        prepared_spec={"pixels": tf.TensorSpec([size, size, 3], tf.float32)},
        finish=finish,
        details=dict(details),
        outputs_doc=list(OUTPUTS_DOC),
        raw_doc={"probabilities": "float32 [batch, classes]: independent per-class probabilities (sigmoid)"},
    )


def export_multi_label_classifier(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    threshold: float,
    crop_fraction: float = 0.875,
    card: dict | None = None,
    version: int | None = None,
    threshold_source: str = TUNED,
    serving_options: dict | None = None,
) -> Path:
    """Writes BASE/<version>/ atomically (next free version by default) and returns that folder."""
    details = multi_label_details(model, class_names, threshold, crop_fraction, threshold_source)
    steps = multi_label_steps(class_names, details)
    return write_savedmodel(
        model, steps, classifier_network(model), base_dir, class_names, card, version, serving_options
    )
