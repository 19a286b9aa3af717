"""RetinaNet detector export: boxes in the original images' pixels.

prepare: decode, letterbox (`resize_with_pad`: longer side to S, pad bottom/right); network: the detector's
heads, anchors and box decoding: `boxes` [B, N, 4] in the model input's pixels and `class_logits` [B, N, C] for
all N anchors; finish: KerasHub's NMS (`keras_hub.layers.NonMaxSuppression`, what the model's own
`decode_predictions` ends with) one image at a time (it does not trace with an unknown batch size), then boxes
divided by the letterbox scale and clipped to the original image. Outputs per image, padded to
`max_detections`: boxes [K, 4] (xyxy), scores [K], class_ids [K] (-1 padding), class_names [K] ("" padding),
num_detections [].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.transforms import resize_with_pad
from kerascv_tl.export.savedmodel import write_savedmodel
from kerascv_tl.export.steps import NetworkFn, ServingSteps

__all__ = ["detector_details", "detector_network", "detector_steps", "export_detector"]

OUTPUTS_DOC = ["boxes (xyxy, original pixels)", "scores", "class_ids", "class_names", "num_detections"]


def detector_details(model: keras.Model, score_threshold: float, max_detections: int, iou_threshold: float) -> dict:
    decoder = model.prediction_decoder
    return {
        "image_size": int(model.input_shape[1]),
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "max_detections": max_detections,
        "resize": "letterbox (resize longer side, pad bottom/right)",
        "nms_box_format": decoder.bounding_box_format,
        "from_logits": bool(decoder.from_logits),
    }


def detector_network(model: keras.Model) -> NetworkFn:
    """pixels -> {"boxes": [B, N, 4] in the NMS box format, "class_logits": [B, N, C]}: `decode_predictions`
    up to its NMS (KerasHub's RetinaNet: anchors, deltas decoded, format converted)."""

    def network(pixels):
        predictions = model(pixels, training=False)
        height, width, channels = pixels.shape[1:]
        anchors = model.anchor_generator(pixels)
        anchors = keras.ops.concatenate(list(anchors.values()), axis=0)
        boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
            anchors=anchors,
            boxes_delta=predictions["bbox_regression"],
            encoded_format="center_xywh",
            anchor_format=model.anchor_generator.bounding_box_format,
            box_format=model.bounding_box_format,
            image_shape=(height, width, channels),
        )
        boxes = keras.utils.bounding_boxes.convert_format(
            boxes,
            source=model.bounding_box_format,
            target=model.prediction_decoder.bounding_box_format,
            height=height,
            width=width,
        )
        return {
            "boxes": tf.cast(boxes, tf.float32),
            "class_logits": tf.cast(predictions["cls_logits"], tf.float32),
        }

    return network


def detector_steps(class_names: Sequence[str], details: dict) -> ServingSteps:
    """The detector's prepare and finish, from the export details (`detector_details`).

    Long: finish is a closure over the NMS layer and the padding of each image's detections.
    """
    import keras_hub

    size, k = int(details["image_size"]), int(details["max_detections"])
    box_format = details.get("nms_box_format", "xyxy")
    decoder = keras_hub.layers.NonMaxSuppression(
        bounding_box_format=box_format,
        from_logits=bool(details.get("from_logits", True)),
        iou_threshold=float(details["iou_threshold"]),
        confidence_threshold=float(details["score_threshold"]),
        max_detections=k,
    )
    names = tf.constant(list(class_names) + [""])  # index -1 (padding) -> ""
    per_image_spec = {
        "boxes": tf.TensorSpec([k, 4], tf.float32),
        "scores": tf.TensorSpec([k], tf.float32),
        "class_ids": tf.TensorSpec([k], tf.int32),
        "class_names": tf.TensorSpec([k], tf.string),
        "num_detections": tf.TensorSpec([], tf.int32),
    }

    def prepare(image):
        shape = tf.shape(image)
        padded, scale = resize_with_pad(image, size)
        return {"pixels": padded, "scale": scale, "height": shape[0], "width": shape[1]}

    def one_image(args):
        boxes, logits, scale, height, width = args
        decoded = decoder(boxes[None], logits[None])
        count = tf.cast(decoded["num_detections"][0], tf.int32)
        valid = tf.range(k) < count
        xyxy = keras.utils.bounding_boxes.convert_format(
            tf.cast(decoded["boxes"][0], tf.float32), source=box_format, target="xyxy", height=size, width=size
        )
        limits = tf.cast(tf.stack([width, height, width, height]), tf.float32)
        xyxy = tf.clip_by_value(xyxy / scale, 0.0, limits)
        ids = tf.where(valid, tf.cast(decoded["labels"][0], tf.int32), -1)
        return {
            "boxes": tf.where(valid[:, None], xyxy, 0.0),
            "scores": tf.where(valid, tf.cast(decoded["confidence"][0], tf.float32), 0.0),
            "class_ids": ids,
            "class_names": tf.gather(names, tf.where(ids < 0, len(class_names), ids)),
            "num_detections": count,
        }

    def finish(raw, prepared):
        args = (raw["boxes"], raw["class_logits"], prepared["scale"], prepared["height"], prepared["width"])
        return tf.map_fn(one_image, args, fn_output_signature=per_image_spec)

    return ServingSteps(
        image_size=size,
        prepare=prepare,
        prepared_spec={
            "pixels": tf.TensorSpec([size, size, 3], tf.float32),
            "scale": tf.TensorSpec([], tf.float32),
            "height": tf.TensorSpec([], tf.int32),
            "width": tf.TensorSpec([], tf.int32),
        },
        finish=finish,
        details=dict(details),
        outputs_doc=list(OUTPUTS_DOC),
        raw_doc={
            "boxes": f"float32 [batch, anchors, 4]: every anchor's decoded box ({box_format}, pixels of the "
            "letterboxed model input), before NMS",
            "class_logits": "float32 [batch, anchors, classes]: every anchor's class logits (sigmoid -> score)",
        },
    )


def export_detector(
    model: keras.Model,
    class_names: Sequence[str],
    base_dir: str | Path,
    score_threshold: float = 0.3,
    max_detections: int = 100,
    iou_threshold: float = 0.5,
    card: dict | None = None,
    version: int | None = None,
    serving_options: dict | None = None,
) -> Path:
    """A RetinaNet detector -> BASE/<version>/ with boxes in the ORIGINAL images' pixels (xyxy); the model's
    own prediction decoder is not touched (the export builds its own NMS from the given thresholds)."""
    steps = detector_steps(class_names, detector_details(model, score_threshold, max_detections, iou_threshold))
    return write_savedmodel(
        model, steps, detector_network(model), base_dir, class_names, card, version, serving_options
    )
