"""SavedModel export of a RetinaNet detector: boxes in the original images' pixels, NMS in the graph."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import resize_with_pad
from kerascv_tl.export.serving import serving_archive, write_versioned


def export_detector(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    score_threshold: float = 0.3,
    max_detections: int = 100,
    iou_threshold: float = 0.5,
    card: dict | None = None,
    version: int | None = None,
) -> Path:
    """A RetinaNet detector -> BASE/<version>/ with boxes in the ORIGINAL images' pixels (xyxy).

    Decode, letterbox (`resize_with_pad`), network, box decoding and NMS all run in the graph. KerasHub's
    NMS does not trace with an unknown batch size, so the graph maps over the batch, one image at a time.
    Outputs per image, padded to `max_detections`: boxes [K, 4], scores [K], class_ids [K] (-1 padding),
    class_names [K] ("" padding), num_detections [].

    Long: the serving functions are closures over the model and the export options.
    """
    size = int(model.input_shape[1])
    previous = model.prediction_decoder
    decoder = type(previous)(
        bounding_box_format=previous.bounding_box_format,
        from_logits=previous.from_logits,
        iou_threshold=iou_threshold,
        confidence_threshold=score_threshold,
        max_detections=max_detections,
    )
    names = tf.constant(list(class_names) + [""])  # index -1 (padding) -> ""
    k = max_detections
    spec = {
        "boxes": tf.TensorSpec([k, 4], tf.float32),
        "scores": tf.TensorSpec([k], tf.float32),
        "class_ids": tf.TensorSpec([k], tf.int32),
        "class_names": tf.TensorSpec([k], tf.string),
        "num_detections": tf.TensorSpec([], tf.int32),
    }

    def detect(image):
        shape = tf.shape(image)
        padded, scale = resize_with_pad(image, size)
        batch = padded[None]
        decoded = model.decode_predictions(model(batch, training=False), batch)
        count = tf.cast(decoded["num_detections"][0], tf.int32)
        valid = tf.range(k) < count
        limits = tf.cast(tf.stack([shape[1], shape[0], shape[1], shape[0]]), tf.float32)
        boxes = tf.clip_by_value(tf.cast(decoded["boxes"][0], tf.float32) / scale, 0.0, limits)
        ids = tf.where(valid, tf.cast(decoded["labels"][0], tf.int32), -1)
        return {
            "boxes": tf.where(valid[:, None], boxes, 0.0),
            "scores": tf.where(valid, tf.cast(decoded["confidence"][0], tf.float32), 0.0),
            "class_ids": ids,
            "class_names": tf.gather(names, tf.where(ids < 0, len(class_names), ids)),
            "num_detections": count,
        }

    # ExportArchive traces the endpoints when it writes them out, so the export's decoder stays in place
    # until the archive is written; then the model gets its own decoder back.
    model.prediction_decoder = decoder
    try:
        archive = serving_archive(model, detect, spec)
        outputs_doc = ["boxes (xyxy, original pixels)", "scores", "class_ids", "class_names", "num_detections"]
        return write_versioned(
            archive,
            base_dir,
            version,
            card,
            class_names,
            outputs_doc,
            {
                "image_size": size,
                "score_threshold": score_threshold,
                "iou_threshold": iou_threshold,
                "max_detections": max_detections,
                "resize": "letterbox (resize longer side, pad bottom/right)",
            },
        )
    finally:
        model.prediction_decoder = previous
