"""Detection overlays as PNG: ground truth (green) and predictions (red) drawn on the images.

Boxes and labels are checked as `kerascv_tl.evaluation.detection` checks them for the metrics (xyxy pixels,
label -1 is padding).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import Rectangle

from kerascv_tl.evaluation.detection import checked_ground_truth, checked_prediction, coco_xywh
from kerascv_tl.evaluation.labels import check_class_names
from kerascv_tl.evaluation.plots import displayable_image, message_png, new_figure, save_figure

GT_COLOR = "#27ae60"
PRED_COLOR = "#e74c3c"


def _draw_detections(
    axes: Any,
    image: Any,
    ground_truth: Mapping[str, Any] | None,
    prediction: Mapping[str, Any] | None,
    names: list[str],
    score_threshold: float,
    font_size: float,
    where: str,
) -> tuple[int, int]:
    """Draws the image with GT (green) and predicted (red, score >= threshold) boxes; returns the counts.

    Long: the drawing calls of one panel (boxes, captions, legend), in order.
    """
    array = displayable_image(image)
    height, width = array.shape[:2]
    num_classes = len(names)
    truth = (
        checked_ground_truth(ground_truth, num_classes, f"{where} ground truth") if ground_truth is not None else None
    )
    pred = checked_prediction(prediction, num_classes, f"{where} prediction") if prediction is not None else None

    # extent puts pixel edges (not centres) on integer coordinates, so box corners land where xyxy says.
    axes.imshow(array, cmap="gray" if array.ndim == 2 else None, interpolation="nearest", extent=(0, width, height, 0))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    line_width = max(1.0, font_size / 5.0)
    label_box = {"alpha": 0.75, "pad": 1.0, "linewidth": 0}

    num_truth = 0
    if truth is not None:
        for box, label in zip(truth["boxes"], truth["labels"]):
            x, y, w, h = coco_xywh(box)
            axes.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=GT_COLOR, linewidth=line_width))
            axes.text(
                x,
                y + h,
                names[label],
                color="white",
                fontsize=font_size,
                va="top",
                ha="left",
                bbox={"facecolor": GT_COLOR, **label_box},
                clip_on=True,
            )
            num_truth += 1

    num_shown = 0
    if pred is not None:
        order = np.argsort(pred["scores"], kind="stable")  # highest score drawn last, on top
        for i in order:
            score = float(pred["scores"][i])
            if score < score_threshold:
                continue
            # Drawn clipped to the image: an untrained model's boxes can reach 1e5 pixels out, where matplotlib
            # fails to render their captions ("raster overflow") even with clip_on.
            x, y, w, h = _clipped_xywh(pred["boxes"][i], width, height)
            axes.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=PRED_COLOR, linewidth=line_width))
            axes.text(
                x,
                y,
                f"{names[pred['labels'][i]]} {score:.2f}",
                color="white",
                fontsize=font_size,
                va="bottom",
                ha="left",
                bbox={"facecolor": PRED_COLOR, **label_box},
                clip_on=True,
            )
            num_shown += 1
    return num_truth, num_shown


def _clipped_xywh(box: Any, width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = coco_xywh(box)
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return x1, y1, x2 - x1, y2 - y1


def _check_threshold(score_threshold: Any) -> float:
    try:
        value = float(score_threshold)
    except (TypeError, ValueError):
        raise ValueError(f"score_threshold must be a number, got {score_threshold!r}") from None
    if math.isnan(value):
        raise ValueError("score_threshold must be a number, got NaN")
    return value


def plot_detections(
    image: Any,
    ground_truth: Mapping[str, Any] | None,
    prediction: Mapping[str, Any] | None,
    class_names: Sequence[str],
    path: str | os.PathLike,
    score_threshold: float = 0.3,
) -> Path:
    """One image with ground-truth boxes (green, class name) and predictions (red, "name 0.87") as a PNG.

    `image` is uint8 [H, W, 3] (grayscale and [0, 1] floats are accepted too); `ground_truth` and `prediction`
    use the dict layout of `coco_detection_metrics` (either may be None). Only predictions scoring at least
    `score_threshold` are drawn. The PNG is written atomically.
    """
    names = check_class_names(class_names)
    threshold = _check_threshold(score_threshold)
    array = displayable_image(image)
    height, width = array.shape[:2]
    fig_width = 8.0
    fig_height = min(max(fig_width * height / max(width, 1), 2.0), 16.0) + 0.4
    figure = new_figure(fig_width, fig_height)
    axes = figure.add_subplot()
    num_truth, num_shown = _draw_detections(axes, array, ground_truth, prediction, names, threshold, 9.0, "image")
    axes.set_title(
        f"ground truth: {num_truth} (green)   predictions >= {threshold:.2f}: {num_shown} (red)", fontsize=10
    )
    return save_figure(figure, path)


def plot_detection_grid(
    samples: Sequence[tuple[Any, Mapping[str, Any] | None, Mapping[str, Any] | None]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    columns: int = 4,
    score_threshold: float = 0.3,
) -> Path:
    """Grid of detection overlays, one cell per `(image, ground_truth, prediction)` sample, as a PNG.

    Same drawing as `plot_detections` (green ground truth, red predictions with score >= `score_threshold`);
    each cell is titled with its index and box counts. With no samples the PNG says "nothing to show".
    """
    names = check_class_names(class_names)
    threshold = _check_threshold(score_threshold)
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    samples = list(samples)
    for index, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 3:
            raise ValueError(f"samples[{index}] must be an (image, ground_truth, prediction) triple")
    if not samples:
        return message_png(path, "nothing to show")

    count = len(samples)
    columns = min(int(columns), count)
    rows = math.ceil(count / columns)
    figure = new_figure(3.2 * columns, 3.4 * rows)
    for index, (image, truth, pred) in enumerate(samples):
        axes = figure.add_subplot(rows, columns, index + 1)
        num_truth, num_shown = _draw_detections(axes, image, truth, pred, names, threshold, 6.0, f"samples[{index}]")
        axes.set_title(f"#{index}: {num_truth} gt, {num_shown} pred", fontsize=8)
    figure.suptitle(f"green: ground truth   red: predictions (score >= {threshold:.2f})", fontsize=9)
    return save_figure(figure, path)
