"""SavedModel export in TF Serving's layout: BASE/<version>/saved_model.pb + variables/ + model_card.json.

Signatures:
  serving_default  image_bytes: string [B] (encoded JPEG/PNG/GIF/BMP; TF Serving's REST API accepts
                   {"b64": ...} for inputs whose name ends in "_bytes")
  serving_images   images: uint8 [B, H, W, 3]
Both decode/resize/crop in the graph with the same functions as the evaluation pipeline and return
probabilities [B, C], scores / class_ids / class_names [B, k] (top k) for a classifier;
`export_detector` and `export_segmenter` keep the two signatures and document their own outputs.

The model is called with `training=False` explicitly: a Keras model called without it lets
preprocessing layers default to training mode, and that flag reaches BatchNorm.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.utils.io import atomic_directory, atomic_write_json

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"


def version_dirs(base: str | Path) -> list[Path]:
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)), key=lambda p: int(p.name))


def latest_version_dir(path: str | Path) -> Path:
    """A version folder as given, or the highest-numbered version under a model base folder."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = version_dirs(path)
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a folder of numbered SavedModel versions")
    return versions[-1]


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
        return {"probabilities": probabilities, "scores": scores, "class_ids": ids,
                "class_names": tf.gather(names, ids)}

    def serve_bytes(image_bytes):
        images = tf.map_fn(lambda b: eval_transform(decode_image(b), image_size, crop_fraction), image_bytes,
                           fn_output_signature=spec)
        return outputs(images)

    def serve_images(images):
        resized = tf.map_fn(lambda im: eval_transform(im, image_size, crop_fraction), images, fn_output_signature=spec)
        return outputs(resized)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_DEFAULT, serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint(SERVING_IMAGES, serve_images,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    outputs_doc = ["probabilities", "scores", "class_ids", "class_names"]
    return _write_versioned(archive, base_dir, version, card, class_names, outputs_doc,
                            {"image_size": image_size, "crop_fraction": crop_fraction, "top_k": k})


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
    """
    from kerascv_tl.data.detection import resize_with_pad

    size = int(model.input_shape[1])
    previous = model.prediction_decoder
    decoder = type(previous)(bounding_box_format=previous.bounding_box_format, from_logits=previous.from_logits,
                             iou_threshold=iou_threshold, confidence_threshold=score_threshold,
                             max_detections=max_detections)
    names = tf.constant(list(class_names) + [""])  # index -1 (padding) -> ""
    k = max_detections
    spec = {"boxes": tf.TensorSpec([k, 4], tf.float32), "scores": tf.TensorSpec([k], tf.float32),
            "class_ids": tf.TensorSpec([k], tf.int32), "class_names": tf.TensorSpec([k], tf.string),
            "num_detections": tf.TensorSpec([], tf.int32)}

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
        return {"boxes": tf.where(valid[:, None], boxes, 0.0),
                "scores": tf.where(valid, tf.cast(decoded["confidence"][0], tf.float32), 0.0),
                "class_ids": ids, "class_names": tf.gather(names, tf.where(ids < 0, len(class_names), ids)),
                "num_detections": count}

    def serve_bytes(image_bytes):
        return tf.map_fn(lambda b: detect(decode_image(b)), image_bytes, fn_output_signature=spec)

    def serve_images(images):
        return tf.map_fn(detect, images, fn_output_signature=spec)

    # ExportArchive traces the endpoints when it writes them out, so the export's decoder stays in place
    # until the archive is written; then the model gets its own decoder back.
    model.prediction_decoder = decoder
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SERVING_DEFAULT, serve_bytes,
                             input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        archive.add_endpoint(SERVING_IMAGES, serve_images,
                             input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        outputs_doc = ["boxes (xyxy, original pixels)", "scores", "class_ids", "class_names", "num_detections"]
        return _write_versioned(archive, base_dir, version, card, class_names, outputs_doc,
                                {"image_size": size, "score_threshold": score_threshold, "iou_threshold": iou_threshold,
                                 "max_detections": max_detections,
                                 "resize": "letterbox (resize longer side, pad bottom/right)"})
    finally:
        model.prediction_decoder = previous


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
    """
    from kerascv_tl.data.segmentation import class_map_at, resize_image

    size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    prepared_spec = {"image": tf.TensorSpec([size, size, 3], tf.float32),
                     "height": tf.TensorSpec([], tf.int32), "width": tf.TensorSpec([], tf.int32)}

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

        maps = tf.map_fn(class_map, (logits, heights, widths),
                         fn_output_signature=tf.TensorSpec([None, None], tf.int32))
        result = {"class_map": maps, "height": heights, "width": widths}
        if include_probabilities:
            result["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return result

    def serve_bytes(image_bytes):
        return segment(tf.map_fn(lambda b: prepare(decode_image(b)), image_bytes, fn_output_signature=prepared_spec))

    def serve_images(images):
        return segment(tf.map_fn(prepare, images, fn_output_signature=prepared_spec))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_DEFAULT, serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint(SERVING_IMAGES, serve_images,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    outputs_doc = ["class_map (int32 [batch, max height, max width], original pixels, -1 outside the image)",
                   "height", "width"]
    if include_probabilities:
        outputs_doc.append("probabilities (float32 [batch, image_size, image_size, classes], model resolution)")
    return _write_versioned(archive, base_dir, version, card, class_names, outputs_doc,
                            {"image_size": size,
                             "resize": f"stretch to {size}x{size} (bilinear, antialiased); logits resized bilinearly "
                                       "to the original size, then argmax",
                             "include_probabilities": bool(include_probabilities)})


def _write_versioned(archive, base_dir, version, card, class_names, outputs_doc, details) -> Path:
    """Writes the archive and its model card into BASE/<version>/ in one atomic rename."""
    base = Path(base_dir)
    existing = version_dirs(base)
    version = version if version is not None else (int(existing[-1].name) + 1 if existing else 1)
    with atomic_directory(base / str(version)) as tmp:
        archive.write_out(str(tmp), verbose=False)
        card = dict(card or {})
        card.setdefault("export", {}).update({
            "version": version,
            "signatures": {
                SERVING_DEFAULT: {"inputs": {"image_bytes": "string [batch]"}, "outputs": outputs_doc},
                SERVING_IMAGES: {"inputs": {"images": "uint8 [batch, height, width, 3]"}, "outputs": outputs_doc},
            },
            **details,
        })
        card.setdefault("labels", list(class_names))
        atomic_write_json(tmp / "model_card.json", card)
    return base / str(version)


def load_serving(path: str | Path):
    """Loads an exported SavedModel (base or version folder); returns (loaded object, version folder)."""
    folder = latest_version_dir(path)
    return tf.saved_model.load(str(folder)), folder
