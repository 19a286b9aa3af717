"""Runs a segmenter over a labelled source at each image's ORIGINAL resolution, the way the export does.

Logits are resized back with `class_map_at`, the function the exported SavedModel runs, so the reported
metrics score the pixels a served model returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.mask_records import SegmentationSource
from kerascv_tl.data.segmentation_pipeline import segmentation_examples
from kerascv_tl.data.transforms import class_map_at, resize_image, segmentation_logits
from kerascv_tl.evaluation.report import write_report
from kerascv_tl.evaluation.segmentation import ConfusionAccumulator, plot_segmentation_grid, segmentation_metrics
from kerascv_tl.utils.io import atomic_write_json

NUM_OVERLAYS = 6


def predict_class_maps(
    model: keras.Model, source: SegmentationSource, image_size: int, batch_size: int = 8, tta: str = "none"
):
    """Yields (image uint8 [H, W, 3], ground truth [H, W], prediction int32 [H, W]) at original resolution;
    `tta` as the export's (`export.tta`)."""
    infer = tf.function(lambda x: segmentation_logits(model, x, tta), reduce_retracing=True)
    pending = []

    def flush():
        images = tf.stack([resize_image(image, image_size) for image, _ in pending])
        logits = infer(images)
        for (image, mask), one in zip(pending, tf.unstack(logits)):
            yield image, mask, class_map_at(one, image.shape[0], image.shape[1]).numpy()
        pending.clear()

    for _, image, mask in segmentation_examples(source):
        pending.append((image, mask))
        if len(pending) == batch_size:
            yield from flush()
    if pending:
        yield from flush()


def evaluate_segmenter(
    model: keras.Model,
    source: SegmentationSource,
    data_config: Any,
    out_dir: str | Path,
    class_names: Sequence[str],
    batch_size: int = 8,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
    tta: str = "none",
) -> dict:
    accumulator = ConfusionAccumulator(len(class_names))
    samples = []
    for image, mask, prediction in predict_class_maps(model, source, data_config.image_size, batch_size, tta):
        accumulator.update(mask, prediction)
        if len(samples) < NUM_OVERLAYS:
            samples.append((image, mask, prediction))
    metrics = segmentation_metrics(accumulator.matrix, class_names)
    metrics["num_images"] = len(source)
    metrics["tta"] = tta
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "confusion_matrix.json",
        {"labels": list(class_names), "matrix": accumulator.matrix.astype(np.int64).tolist()},
    )
    plot_segmentation_grid(samples, class_names, out / "segmentations.png")
    return write_report(out, metrics, histories, extra)
