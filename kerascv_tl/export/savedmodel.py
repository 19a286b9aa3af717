"""SavedModel export in TF Serving's layout: BASE/<version>/saved_model.pb + variables/ + model_card.json.

Signatures:
  serving_default  image_bytes: string [B] (encoded JPEG/PNG/GIF/BMP; TF Serving's REST API accepts
                   {"b64": ...} for inputs whose name ends in "_bytes")
  serving_images   images: uint8 [B, H, W, 3]
Both decode/resize/crop in the graph with the same functions as the evaluation pipeline and return
probabilities [B, C], scores / class_ids / class_names [B, k] (top k).

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
    base = Path(base_dir)
    existing = version_dirs(base)
    version = version if version is not None else (int(existing[-1].name) + 1 if existing else 1)
    target = base / str(version)
    with atomic_directory(target) as tmp:
        archive.write_out(str(tmp), verbose=False)
        card = dict(card or {})
        card.setdefault("export", {}).update({
            "version": version, "signatures": {
                SERVING_DEFAULT: {"inputs": {"image_bytes": "string [batch]"},
                                  "outputs": ["probabilities", "scores", "class_ids", "class_names"]},
                SERVING_IMAGES: {"inputs": {"images": "uint8 [batch, height, width, 3]"},
                                 "outputs": ["probabilities", "scores", "class_ids", "class_names"]},
            },
            "image_size": image_size, "crop_fraction": crop_fraction, "top_k": k,
        })
        card.setdefault("labels", list(class_names))
        atomic_write_json(tmp / "model_card.json", card)
    return target


def load_serving(path: str | Path):
    """Loads an exported SavedModel (base or version folder); returns (loaded object, version folder)."""
    folder = latest_version_dir(path)
    return tf.saved_model.load(str(folder)), folder
