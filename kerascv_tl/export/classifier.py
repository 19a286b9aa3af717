"""Image classifier export: probabilities and the top-k classes of each image.

prepare: `eval_transform` (shorter side to S / crop_fraction, centre crop S x S); network: the classifier's
softmax probabilities; finish: top-k scores, class ids and class names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.export.savedmodel import write_savedmodel
from kerascv_tl.export.steps import NetworkFn, ServingSteps

__all__ = ["classifier_details", "classifier_network", "classifier_steps", "export_classifier"]


def classifier_details(model: keras.Model, class_names: Sequence[str], crop_fraction: float, top_k: int) -> dict:
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    return {
        "image_size": int(model.input_shape[1]),
        "crop_fraction": crop_fraction,
        "top_k": min(top_k, num_classes),
    }


def classifier_network(model: keras.Model) -> NetworkFn:
    return lambda pixels: {"probabilities": tf.cast(model(pixels, training=False), tf.float32)}


def classifier_steps(class_names: Sequence[str], details: dict) -> ServingSteps:
    """The classifier's prepare and finish, from the export details (`classifier_details`)."""
    size, crop, k = int(details["image_size"]), float(details["crop_fraction"]), int(details["top_k"])
    names = tf.constant(list(class_names))

    def finish(raw, prepared):
        probabilities = raw["probabilities"]
        scores, ids = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "scores": scores,
            "class_ids": ids,
            "class_names": tf.gather(names, ids),
        }

    return ServingSteps(
        image_size=size,
        prepare=lambda image: {"pixels": eval_transform(image, size, crop)},
        prepared_spec={"pixels": tf.TensorSpec([size, size, 3], tf.float32)},
        finish=finish,
        details=dict(details),
        outputs_doc=["probabilities", "scores", "class_ids", "class_names"],
        raw_doc={"probabilities": "float32 [batch, classes]: softmax probabilities, label order"},
    )


def export_classifier(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    crop_fraction: float = 0.875,
    top_k: int = 5,
    card: dict | None = None,
    version: int | None = None,
    serving_options: dict | None = None,
) -> Path:
    """Writes BASE/<version>/ atomically (next free version by default) and returns that folder."""
    steps = classifier_steps(class_names, classifier_details(model, class_names, crop_fraction, top_k))
    return write_savedmodel(
        model, steps, classifier_network(model), base_dir, class_names, card, version, serving_options
    )
