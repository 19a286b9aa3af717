"""Runs a detector over a labelled source: COCO metrics from pycocotools, overlays, metrics.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerascv_tl.data.detection_pipeline import detection_dataset
from kerascv_tl.data.records import DetectionSource
from kerascv_tl.evaluation.detection import coco_detection_metrics
from kerascv_tl.evaluation.detection_plots import plot_detection_grid
from kerascv_tl.evaluation.report import write_report

EVAL_SCORE_THRESHOLD = 0.05  # low, so COCO mAP sees the whole precision-recall curve
NUM_OVERLAYS = 8


def predict_source(
    model: keras.Model,
    source: DetectionSource,
    image_size: int,
    batch_size: int,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    num_samples: int = NUM_OVERLAYS,
):
    """Ground truth and predictions per image, in model-input pixels (letterboxing scales boxes
    uniformly and pads bottom/right, so IoU and therefore COCO AP are those of the original pixels)."""
    previous = model.prediction_decoder
    model.prediction_decoder = type(previous)(
        bounding_box_format=previous.bounding_box_format,
        from_logits=previous.from_logits,
        iou_threshold=previous.iou_threshold,
        confidence_threshold=score_threshold,
        max_detections=previous.max_detections,
    )
    ground_truth, predictions, samples = [], [], []
    try:
        for images, targets in detection_dataset(source, image_size, batch_size, training=False):
            count = int(images.shape[0])
            # Every call gets the same batch size: a short last batch would make Keras retrace with an
            # unknown batch size, which KerasHub's NMS cannot trace ("Expected int32, but got None").
            padded = np.zeros((batch_size, *images.shape[1:]), np.float32)
            padded[:count] = images.numpy()
            out = model.predict(padded, batch_size=batch_size, verbose=0)
            for i in range(count):
                n = int(out["num_detections"][i])
                keep = targets["labels"][i].numpy() >= 0
                gt = {"boxes": targets["boxes"][i].numpy()[keep], "labels": targets["labels"][i].numpy()[keep]}
                pred = {
                    "boxes": np.asarray(out["boxes"][i][:n], np.float32),
                    "scores": np.asarray(out["confidence"][i][:n], np.float32),
                    "labels": np.asarray(out["labels"][i][:n], np.int64),
                }
                ground_truth.append(gt)
                predictions.append(pred)
                if len(samples) < num_samples:
                    samples.append((np.clip(images[i].numpy(), 0, 255).astype(np.uint8), gt, pred))
    finally:
        model.prediction_decoder = previous
    return ground_truth, predictions, samples


def evaluate_detector(
    model: keras.Model,
    source: DetectionSource,
    data_config: Any,
    out_dir: str | Path,
    class_names: Sequence[str],
    batch_size: int = 8,
    histories: Sequence[tuple[str, Path]] = (),
    extra: dict | None = None,
) -> dict:
    ground_truth, predictions, samples = predict_source(model, source, data_config.image_size, batch_size)
    metrics = coco_detection_metrics(ground_truth, predictions, class_names)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_detection_grid(samples, class_names, out / "detections.png")
    return write_report(out, metrics, histories, extra)
