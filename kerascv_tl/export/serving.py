"""SavedModels for TF Serving: the layout BASE/<version>/saved_model.pb + variables/ + model_card.json + README.md
(the same card in Markdown), the two signatures every task exports, and loading an export back.

Signatures (each task documents its outputs in `export/classifier.py`, `detector.py`, `segmenter.py`):
  serving_default  image_bytes: string [B] (encoded JPEG/PNG/GIF/BMP/WebP; TF Serving's REST API accepts
                   {"b64": ...} for inputs whose name ends in "_bytes")
  serving_images   images: uint8 [B, H, W, 3]
Both decode/resize in the graph with the functions the evaluation pipeline uses (`kerascv_tl.data.decode`,
`kerascv_tl.data.transforms`). Models are called with `training=False` explicitly: a Keras model called
without it lets preprocessing layers default to training mode, and that flag reaches BatchNorm.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.export.card import portable_card
from kerascv_tl.export.card_markdown import render_model_card
from kerascv_tl.utils.io import atomic_directory, atomic_write_json, atomic_write_text

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


def serving_archive(
    model: keras.Model,
    prepare_image: Callable[[tf.Tensor], object],
    prepared_spec: object,
    finish: Callable[[object], dict] | None = None,
) -> keras.export.ExportArchive:
    """An ExportArchive tracking `model` with the two signatures, built from one image's preparation.

    `prepare_image` maps ONE decoded image (uint8 [H, W, 3]) to `prepared_spec` (a tensor spec or a dict of them:
    resized pixels, or the whole per-image result); `serving_default` decodes each encoded image first
    (`decode_image`, as the training pipeline does), `serving_images` prepares the given pixels; both map over
    the batch and hand the stacked result to `finish` (the batched model call and its outputs; by default the
    prepared batch is the output).
    """

    def serve_bytes(image_bytes):
        prepared = tf.map_fn(lambda b: prepare_image(decode_image(b)), image_bytes, fn_output_signature=prepared_spec)
        return finish(prepared) if finish is not None else prepared

    def serve_images(images):
        prepared = tf.map_fn(prepare_image, images, fn_output_signature=prepared_spec)
        return finish(prepared) if finish is not None else prepared

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_DEFAULT, serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        SERVING_IMAGES, serve_images, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    )
    return archive


def write_versioned(
    archive: keras.export.ExportArchive,
    base_dir: str | Path,
    version: int | None,
    card: dict | None,
    class_names: Sequence[str],
    outputs_doc: list[str],
    details: dict,
) -> Path:
    """Writes the archive and its model card (model_card.json, and README.md in Markdown) into BASE/<version>/ in
    one atomic rename. The card is made portable (`portable_card`) whoever built it: it leaves this machine."""
    base = Path(base_dir)
    existing = version_dirs(base)
    version = version if version is not None else (int(existing[-1].name) + 1 if existing else 1)
    with atomic_directory(base / str(version)) as tmp:
        archive.write_out(str(tmp), verbose=False)
        card = dict(card or {})
        card.setdefault("export", {}).update(
            {
                "version": version,
                "base_folder": base.name,  # the model's name in TF Serving's layout (a name, not a local path)
                "signatures": {
                    SERVING_DEFAULT: {"inputs": {"image_bytes": "string [batch]"}, "outputs": outputs_doc},
                    SERVING_IMAGES: {"inputs": {"images": "uint8 [batch, height, width, 3]"}, "outputs": outputs_doc},
                },
                **details,
            }
        )
        card.setdefault("labels", list(class_names))
        card = portable_card(card)
        atomic_write_json(tmp / "model_card.json", card)
        atomic_write_text(tmp / "README.md", render_model_card(card))
    return base / str(version)


def load_serving(path: str | Path):
    """Loads an exported SavedModel (base or version folder); returns (loaded object, version folder)."""
    folder = latest_version_dir(path)
    return tf.saved_model.load(str(folder)), folder
