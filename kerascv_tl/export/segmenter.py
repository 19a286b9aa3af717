"""SavedModel export of a semantic segmenter: class maps at the original images' size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import class_map_at, resize_image
from kerascv_tl.export.serving import serving_archive, write_versioned


def export_segmenter(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    include_probabilities: bool = False,
    card: dict | None = None,
    version: int | None = None,
) -> Path:
    """A semantic segmenter -> BASE/<version>/ with class maps at the ORIGINAL images' size.

    `model` takes float32 pixels [B, S, S, 3] in [0, 255] and returns logits [B, S, S, C]. In the graph,
    each image is decoded and stretched to S x S with `resize_image`, the network runs once on the whole
    batch, and each image's logits go back to its own height and width with `class_map_at` (the very
    functions the evaluation uses). Images in one batch may differ in size, so the outputs are
    class_map int32 [B, Hmax, Wmax] (-1 outside each image), height int32 [B], width int32 [B], and with
    `include_probabilities` probabilities float32 [B, S, S, C] (softmax at model resolution).

    Long: the serving functions are closures over the model and the export options.
    """
    size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    prepared_spec = {
        "image": tf.TensorSpec([size, size, 3], tf.float32),
        "height": tf.TensorSpec([], tf.int32),
        "width": tf.TensorSpec([], tf.int32),
    }

    def prepare(image):
        shape = tf.shape(image)
        return {"image": resize_image(image, size), "height": shape[0], "width": shape[1]}

    def segment(prepared):
        logits = tf.cast(model(prepared["image"], training=False), tf.float32)
        heights, widths = prepared["height"], prepared["width"]
        max_height = tf.maximum(tf.reduce_max(heights), 0)  # reduce_max of an empty batch is INT_MIN
        max_width = tf.maximum(tf.reduce_max(widths), 0)

        def class_map(args):
            image_logits, height, width = args
            classes = class_map_at(image_logits, height, width)
            return tf.pad(classes, [[0, max_height - height], [0, max_width - width]], constant_values=-1)

        maps = tf.map_fn(
            class_map, (logits, heights, widths), fn_output_signature=tf.TensorSpec([None, None], tf.int32)
        )
        result = {"class_map": maps, "height": heights, "width": widths}
        if include_probabilities:
            result["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return result

    archive = serving_archive(model, prepare, prepared_spec, segment)
    outputs_doc = [
        "class_map (int32 [batch, max height, max width], original pixels, -1 outside the image)",
        "height",
        "width",
    ]
    if include_probabilities:
        outputs_doc.append("probabilities (float32 [batch, image_size, image_size, classes], model resolution)")
    return write_versioned(
        archive,
        base_dir,
        version,
        card,
        class_names,
        outputs_doc,
        {
            "image_size": size,
            "resize": f"stretch to {size}x{size} (bilinear, antialiased); logits resized bilinearly "
            "to the original size, then argmax",
            "include_probabilities": bool(include_probabilities),
        },
    )
