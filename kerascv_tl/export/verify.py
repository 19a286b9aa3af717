"""`kerascv-tl export --verify`: how closely an exported artefact follows the run's Keras model on the run's own
validation images.

Both sides get the same inputs: each image decoded and prepared once (`ServingSteps.prepare`), rounded to the
uint8 pixels a LiteRT / ONNX graph takes (left in float32 for a SavedModel, which decodes the bytes itself and
does not round), then the Keras network (reference) and the artefact (candidate) run on them, and the same
`finish` turns both into the task's outputs and result rows. The task compares the rows
(`Task.export_agreement`: top-1 agreement and probability differences, matched boxes, pixel agreement) and,
where the validation labels allow, scores both (classification accuracy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KerasRuntime", "verify_export", "verify_preset"]

BATCH = 16


class KerasRuntime:
    """The Keras network as a pixel runtime (the reference the exported graphs are compared with)."""

    def __init__(self, network: Any):
        self.network = network

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        return {k: v.numpy() for k, v in self.network(tf.cast(pixels, tf.float32)).items()}


def verify_export(run: Any, artefact: str | Path, max_images: int = 200) -> dict:
    """Agreement figures of `artefact` (.tflite, .onnx or a SavedModel folder) against `run`'s model
    (`kerascv_tl.export.run_export.ExportedRun`) on up to `max_images` of its validation images (in order)."""
    from kerascv_tl.predict import load_predictor
    from kerascv_tl.predict.runtimes import PortableServing

    steps, network = run.task.export_steps(run.model, run.class_names, run.config, run.card)
    reference = PortableServing(KerasRuntime(network), steps)
    candidate = load_predictor(artefact)
    train, val = run.task.read_sources(run.config.data, run.config.seed)
    paths = list(val.image_paths() or [])[:max_images]
    if not paths:
        raise FileNotFoundError(f"--verify reads {run.root}'s validation images, and its data gives none here")
    reference_rows, candidate_rows, used = [], [], []
    for start in range(0, len(paths), BATCH):
        batch = paths[start : start + BATCH]
        encoded = [Path(p).read_bytes() for p in batch]
        if isinstance(candidate.serving, PortableServing):
            # Prepare once, feed both: the comparison is of the runtimes, not of two decodes.
            prepared = candidate.serving.prepare(encoded)
            reference_rows += _rows(run, reference, prepared)
            candidate_rows += _rows(run, candidate.serving, prepared)
        else:
            # A SavedModel decodes the bytes itself and feeds the network float32 pixels, unrounded: so does
            # its reference, and the figures measure the export rather than uint8 rounding.
            prepared = reference.prepare(encoded)
            outputs = {k: v.numpy() for k, v in steps.serve(network)(prepared).items()}
            reference_rows += run.task.prediction_rows(outputs, run.card, len(run.class_names))
            candidate_rows += run.task.prediction_rows(candidate.serving(encoded), run.card, len(run.class_names))
        used += batch
    figures = run.task.export_agreement(reference_rows, candidate_rows, val, used)
    return {"artefact": str(artefact), "format": candidate.format, "images": len(used), **figures}


def _rows(run: Any, serving: Any, prepared: dict) -> list[dict]:
    return run.task.prediction_rows(serving.serve_prepared(prepared), run.card, len(run.class_names))


def verify_preset(run: Any, folder: str | Path, max_images: int = 200) -> dict:
    """A preset export reloaded by KerasHub against `run`'s model: the largest difference of their raw outputs on up
    to `max_images` validation images, prepared as served."""
    from kerascv_tl.export.preset import preset_round_trip
    from kerascv_tl.predict.runtimes import PortableServing

    steps, network = run.task.export_steps(run.model, run.class_names, run.config, run.card)
    serving = PortableServing(KerasRuntime(network), steps)
    paths = list(run.image_paths("val"))[:max_images]
    if not paths:
        raise FileNotFoundError(f"--verify reads {run.root}'s validation images, and its data gives none here")
    pixels = [
        serving.prepare([Path(p).read_bytes() for p in paths[i : i + BATCH]])["pixels"]
        for i in range(0, len(paths), BATCH)
    ]
    difference = preset_round_trip(folder, run.model, run.task, pixels)
    return {"artefact": str(folder), "format": "preset", "images": len(paths), "max_output_difference": difference}
