"""SavedModels for TF Serving: the layout BASE/<version>/saved_model.pb + variables/ + model_card.json + README.md
(the same card in Markdown), the two signatures every task exports, and loading an export back.

Signatures (each task documents its outputs in `export/classifier.py`, `detector.py`, `segmenter.py`):
  serving_default  image_bytes: string [B] (encoded JPEG/PNG/GIF/BMP/WebP; TF Serving's REST API accepts
                   {"b64": ...} for inputs whose name ends in "_bytes")
  serving_images   images: uint8 [B, H, W, 3]
Both decode/resize in the graph with the functions the evaluation pipeline uses (`kerascv_tl.data.decode`,
`kerascv_tl.data.transforms`). Models are called with `training=False` explicitly: a Keras model called
without it lets preprocessing layers default to training mode, and that flag reaches BatchNorm.

Requests are guarded in the graph (`kerascv_tl.export.request_guard`), before any decoder runs: a request of more
than `max_batch` images is refused (both signatures), and so is every encoded image whose header declares more than
`max_image_pixels` pixels, is cut short before its size, or is empty or of no known format; the InvalidArgumentError
names the image's index in the request. Each version folder also holds TF Serving's warm-up file
(`kerascv_tl.export.warmup`); the limits and the warm-up request count are recorded in the card's export section.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.image_check import DEFAULT_MAX_IMAGE_PIXELS
from kerascv_tl.export.card import portable_card
from kerascv_tl.export.card_markdown import render_model_card
from kerascv_tl.export.request_guard import checked_batch, checked_image_bytes
from kerascv_tl.export.warmup import MAX_WARMUP_REQUESTS, WARMUP_FILE, synthetic_jpeg, write_warmup_requests
from kerascv_tl.utils.io import atomic_directory, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
DEFAULT_MAX_BATCH = 64  # export.max_batch's default
_DEFAULT_WARMUP_SIZE = 224  # the synthetic warm-up image's side when neither the details nor the model give one


@dataclass(frozen=True)
class ServingGuard:
    """What `serving_archive` built into an archive, for `write_versioned` (kept as `archive.serving_guard`): the
    request limits to record in the card, the model's input (height, width) for the synthetic warm-up image, and
    the `serving_default` function that checks warm-up images before they are written."""

    max_image_pixels: int
    max_batch: int
    input_size: tuple[int, int] | None
    serve_bytes: Callable


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
    *,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> keras.export.ExportArchive:
    """An ExportArchive tracking `model` with the two signatures, built from one image's preparation.

    `prepare_image` maps ONE decoded image (uint8 [H, W, 3]) to `prepared_spec` (a tensor spec or a dict of them:
    resized pixels, or the whole per-image result); `serving_default` decodes each encoded image first
    (`decode_image`, as the training pipeline does), `serving_images` prepares the given pixels; both map over
    the batch and hand the stacked result to `finish` (the batched model call and its outputs; by default the
    prepared batch is the output).

    Both refuse a request of more than `max_batch` images; `serving_default` refuses an image whose header declares
    more than `max_image_pixels` pixels (or that is empty, truncated or of no known format) before decoding it
    (`request_guard`). The limits ride along as `archive.serving_guard` for `write_versioned` to record.
    """
    if max_image_pixels < 1 or max_batch < 1:
        raise ValueError(f"max_image_pixels and max_batch must be at least 1, got {max_image_pixels} and {max_batch}")
    max_image_pixels, max_batch = int(max_image_pixels), int(max_batch)

    def prepare_bytes(item):
        image_bytes, index = item
        return prepare_image(decode_image(checked_image_bytes(image_bytes, index, max_image_pixels)))

    def serve_bytes(image_bytes):
        image_bytes = checked_batch(image_bytes, max_batch, "image_bytes")
        indices = tf.range(tf.size(image_bytes))
        prepared = tf.map_fn(prepare_bytes, (image_bytes, indices), fn_output_signature=prepared_spec)
        return finish(prepared) if finish is not None else prepared

    def serve_images(images):
        prepared = tf.map_fn(
            prepare_image, checked_batch(images, max_batch, "images"), fn_output_signature=prepared_spec
        )
        return finish(prepared) if finish is not None else prepared

    archive = keras.export.ExportArchive()
    archive.track(model)
    serve_default = archive.add_endpoint(
        SERVING_DEFAULT, serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        SERVING_IMAGES, serve_images, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    )
    archive.serving_guard = ServingGuard(max_image_pixels, max_batch, _input_size(model), serve_default)
    return archive


def _input_size(model: keras.Model) -> tuple[int, int] | None:
    """The model's fixed input (height, width), or None (several inputs, or a size left open)."""
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError):
        return None
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[1:3]):
        return int(shape[1]), int(shape[2])
    return None


def write_versioned(
    archive: keras.export.ExportArchive,
    base_dir: str | Path,
    version: int | None,
    card: dict | None,
    class_names: Sequence[str],
    outputs_doc: list[str],
    details: dict,
    *,
    warmup_images: Sequence[bytes] | None = None,
) -> Path:
    """Writes the archive, TF Serving's warm-up file and the model card (model_card.json, and README.md in
    Markdown) into BASE/<version>/ in one atomic rename. The card is made portable (`portable_card`) whoever built
    it: it leaves this machine.

    `warmup_images`: encoded images, one warm-up request each (1 to `warmup.MAX_WARMUP_REQUESTS`); None writes one
    synthetic JPEG at the model's input size. Each is run through the archive's `serving_default` first: one it
    refuses (a warm-up request that fails stops TF Serving from loading the version) is left out with a warning,
    and the synthetic JPEG stands in when none is left.
    """
    guard = getattr(archive, "serving_guard", None)
    warmup = _served_warmup(guard, warmup_images) if warmup_images is not None else []
    warmup = warmup or [synthetic_jpeg(*_warmup_size(details, guard))]
    base = Path(base_dir)
    existing = version_dirs(base)
    version = version if version is not None else (int(existing[-1].name) + 1 if existing else 1)
    with atomic_directory(base / str(version)) as tmp:
        archive.write_out(str(tmp), verbose=False)
        write_warmup_requests(tmp, warmup, SERVING_DEFAULT, "image_bytes")
        limits = {"max_image_pixels": guard.max_image_pixels, "max_batch": guard.max_batch} if guard else {}
        card = dict(card or {})
        card.setdefault("export", {}).update(
            {
                "version": version,
                "base_folder": base.name,  # the model's name in TF Serving's layout (a name, not a local path)
                "signatures": {
                    SERVING_DEFAULT: {"inputs": {"image_bytes": "string [batch]"}, "outputs": outputs_doc},
                    SERVING_IMAGES: {"inputs": {"images": "uint8 [batch, height, width, 3]"}, "outputs": outputs_doc},
                },
                **limits,
                "warmup_requests": len(warmup),
                "warmup_file": WARMUP_FILE.as_posix(),
                **details,
            }
        )
        card.setdefault("labels", list(class_names))
        card = portable_card(card)
        atomic_write_json(tmp / "model_card.json", card)
        atomic_write_text(tmp / "README.md", render_model_card(card))
    return base / str(version)


def _warmup_size(details: dict, guard: ServingGuard | None) -> tuple[int, int]:
    """(height, width) of the synthetic warm-up image: the export's image_size, else the model's input size, shrunk
    to fit max_image_pixels (were it refused, TF Serving would not load the version)."""
    height, width = _DEFAULT_WARMUP_SIZE, _DEFAULT_WARMUP_SIZE
    if isinstance(details.get("image_size"), int) and details["image_size"] > 0:
        height, width = details["image_size"], details["image_size"]
    elif guard is not None and guard.input_size is not None:
        height, width = guard.input_size
    if guard is not None and height * width > guard.max_image_pixels:
        scale = (guard.max_image_pixels / (height * width)) ** 0.5
        height, width = max(1, int(height * scale)), max(1, int(width * scale))
    return height, width


def _served_warmup(guard: ServingGuard | None, images: Sequence[bytes]) -> list[bytes]:
    """The warm-up images `serving_default` accepts, in order; each one it refuses is left out with a warning (a
    failing warm-up request would stop TF Serving from loading the version, and warm-up is no reason to fail an
    export). Too many, none, or something other than bytes is a caller's mistake: ValueError."""
    images = list(images)
    if not 1 <= len(images) <= MAX_WARMUP_REQUESTS:
        raise ValueError(f"{len(images)} warm-up images: give 1 to {MAX_WARMUP_REQUESTS} (or None for a synthetic one)")
    if not all(isinstance(image, (bytes, bytearray)) for image in images):
        raise ValueError("warmup_images must be encoded image bytes")
    served = []
    for index, image in enumerate(images):
        try:
            if guard is not None:
                guard.serve_bytes(tf.constant([bytes(image)]))
            elif not image:
                raise ValueError("an empty string")
        except (tf.errors.OpError, ValueError) as error:
            reason = _op_error_reason(error) if isinstance(error, tf.errors.OpError) else str(error)
            log.warning("warm-up image %d left out: the export's serving_default refuses it (%s)", index, reason)
            continue
        served.append(bytes(image))
    return served


def _op_error_reason(error: tf.errors.OpError) -> str:
    """The line of a graph error that says what went wrong (not "Graph execution error:", the Python stack or the
    node names), an Assert's "assertion failed: [...]" unwrapped."""
    skipped = ("Graph execution error", "Detected at node")
    lines = [line for line in (error.message or "").splitlines() if line.strip() and not line[0].isspace()]
    lines = [line for line in lines if not line.startswith(skipped)]
    if not lines:
        return type(error).__name__
    reason = lines[0]
    if reason.startswith("assertion failed: [") and reason.endswith("]"):
        reason = reason[len("assertion failed: [") : -1]
    return reason


def load_serving(path: str | Path):
    """Loads an exported SavedModel (base or version folder); returns (loaded object, version folder)."""
    folder = latest_version_dir(path)
    return tf.saved_model.load(str(folder)), folder
