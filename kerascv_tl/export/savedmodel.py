"""The SavedModel of any task: its `ServingSteps` and network in the two serving signatures, written as a version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from kerascv_tl.export.serving import serving_archive, write_versioned
from kerascv_tl.export.steps import NetworkFn, ServingSteps


def write_savedmodel(
    model: keras.Model,
    steps: ServingSteps,
    network: NetworkFn,
    base_dir: str | Path,
    class_names: Sequence[str],
    card: dict | None = None,
    version: int | None = None,
    serving_options: dict | None = None,
) -> Path:
    """BASE/<version>/ with `serving_default` (encoded bytes) and `serving_images` (uint8 pixels), each running
    prepare -> network -> finish in the graph. `serving_options`: `max_image_pixels` and `max_batch` (the request
    guard) and `warmup_images` (encoded images for the TF Serving warm-up file)."""
    options = dict(serving_options or {})
    warmup = {"warmup_images": options.pop("warmup_images")} if "warmup_images" in options else {}
    archive = serving_archive(model, steps.prepare, steps.prepared_spec, steps.serve(network), **options)
    return write_versioned(archive, base_dir, version, card, class_names, steps.outputs_doc, steps.details, **warmup)
