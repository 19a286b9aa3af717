"""SavedModel export of an image classifier: probabilities and the top-k classes of each image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.export.serving import serving_archive, write_versioned


def export_classifier(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    crop_fraction: float = 0.875,
    top_k: int = 5,
    card: dict | None = None,
    version: int | None = None,
) -> Path:
    """Writes BASE/<version>/ atomically (next free version by default) and returns that folder."""
    image_size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    k = min(top_k, num_classes)
    names = tf.constant(list(class_names))
    spec = tf.TensorSpec([image_size, image_size, 3], tf.float32)

    def outputs(images):
        probabilities = model(images, training=False)
        scores, ids = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "scores": scores,
            "class_ids": ids,
            "class_names": tf.gather(names, ids),
        }

    archive = serving_archive(model, lambda image: eval_transform(image, image_size, crop_fraction), spec, outputs)
    outputs_doc = ["probabilities", "scores", "class_ids", "class_names"]
    return write_versioned(
        archive,
        base_dir,
        version,
        card,
        class_names,
        outputs_doc,
        {"image_size": image_size, "crop_fraction": crop_fraction, "top_k": k},
    )
