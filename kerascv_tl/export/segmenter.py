"""Semantic segmenter export: class maps at the original images' size.

prepare: `resize_image` (stretch to S x S, bilinear, antialiased) and the image's height and width; network:
the logits [B, S, S, C]; finish: each image's logits back to its own height and width with `class_map_at`
(the very functions the evaluation uses). Images in one batch may differ in size, so the outputs are
class_map int32 [B, Hmax, Wmax] (-1 outside each image), height int32 [B], width int32 [B], and with
`include_probabilities` probabilities float32 [B, S, S, C] (softmax at model resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import class_map_at, resize_image, segmentation_logits
from kerascv_tl.export.savedmodel import write_savedmodel
from kerascv_tl.export.steps import NetworkFn, ServingSteps

__all__ = ["export_segmenter", "segmenter_details", "segmenter_network", "segmenter_steps"]


def segmenter_details(
    model: keras.Model, class_names: Sequence[str], include_probabilities: bool, tta: str = "none"
) -> dict:
    size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    return {
        "image_size": size,
        "resize": f"stretch to {size}x{size} (bilinear, antialiased); logits resized bilinearly "
        "to the original size, then argmax",
        "include_probabilities": bool(include_probabilities),
        "tta": tta,  # inside the network part: prepare and finish are the same either way
    }


def segmenter_network(model: keras.Model, tta: str = "none") -> NetworkFn:
    """pixels -> {"logits"}; `tta` "flip" averages the image's and its mirror image's logits inside the graph."""
    return lambda pixels: {"logits": segmentation_logits(model, pixels, tta)}


def segmenter_steps(class_names: Sequence[str], details: dict) -> ServingSteps:
    """The segmenter's prepare and finish, from the export details (`segmenter_details`)."""
    size, include_probabilities = int(details["image_size"]), bool(details.get("include_probabilities"))

    def prepare(image):
        shape = tf.shape(image)
        return {"pixels": resize_image(image, size), "height": shape[0], "width": shape[1]}

    def finish(raw, prepared):
        logits = raw["logits"]
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

    outputs_doc = [
        "class_map (int32 [batch, max height, max width], original pixels, -1 outside the image)",
        "height",
        "width",
    ]
    if include_probabilities:
        outputs_doc.append("probabilities (float32 [batch, image_size, image_size, classes], model resolution)")
    return ServingSteps(
        image_size=size,
        prepare=prepare,
        prepared_spec={
            "pixels": tf.TensorSpec([size, size, 3], tf.float32),
            "height": tf.TensorSpec([], tf.int32),
            "width": tf.TensorSpec([], tf.int32),
        },
        finish=finish,
        details=dict(details),
        outputs_doc=outputs_doc,
        raw_doc={"logits": "float32 [batch, image_size, image_size, classes]: class logits at model resolution"},
    )


def export_segmenter(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    include_probabilities: bool = False,
    card: dict | None = None,
    version: int | None = None,
    serving_options: dict | None = None,
    tta: str = "none",
) -> Path:
    """A semantic segmenter (float32 pixels [B, S, S, 3] in [0, 255] -> logits [B, S, S, C]) -> BASE/<version>/
    with class maps at the ORIGINAL images' size; `tta` "flip" averages the logits of each image and its mirror."""
    steps = segmenter_steps(class_names, segmenter_details(model, class_names, include_probabilities, tta))
    return write_savedmodel(
        model, steps, segmenter_network(model, tta), base_dir, class_names, card, version, serving_options
    )
