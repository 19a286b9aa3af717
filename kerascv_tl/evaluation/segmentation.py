"""Semantic segmentation metrics (confusion matrix accumulated by Keras) and segmentation overlays as PNG.

The per-pixel confusion matrix is accumulated by `keras.metrics.MeanIoU` (its `total_cm` variable, with
`ignore_class` dropping unlabelled pixels); every reported number is derived from that matrix.

Conventions:

* Class maps are integer arrays `[H, W]` (or batches `[B, H, W]`): pixel value = class index in `[0, C)`.
  In ground truth, `IGNORE_INDEX` (255) marks pixels that are not labelled: they are counted nowhere,
  whatever the prediction says there.
* The confusion matrix has one row per ground-truth class and one column per predicted class.
* IoU of class c = TP / (TP + FP + FN). A class absent from both the ground truth and the predictions has
  no IoU (`None`) and is left out of the mean; a class that is only predicted has IoU 0 and counts.
* Class 0 is the background: overlays leave its pixels as the photo and colour every other class.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from matplotlib.patches import Patch
from PIL import Image

from kerascv_tl.data.mask_records import IGNORE_INDEX
from kerascv_tl.evaluation.labels import check_class_names
from kerascv_tl.evaluation.plots import message_png, new_figure, save_figure
from kerascv_tl.utils.io import atomic_write_bytes

IGNORE_COLOR = (255, 255, 255)
MAX_LEGEND_ENTRIES = 20


# --------------------------------------------------------------------------------------------------- helpers


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _as_class_map(values: Any, name: str) -> np.ndarray:
    """`values` as an int64 array, or ValueError when it does not hold whole class indices."""
    array = np.asarray(values)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    return array.astype(np.int64)


def _check_values(
    array: np.ndarray, num_classes: int, name: str, allow_ignore: bool, ignore_index: int = IGNORE_INDEX
) -> None:
    bad = (array < 0) | (array >= num_classes)
    if allow_ignore:
        bad &= array != ignore_index
    if np.any(bad):
        allowed = f"[0, {num_classes})" + (f" or {ignore_index} (ignore)" if allow_ignore else "")
        raise ValueError(
            f"{name} must hold class indices in {allowed}, got {int(array[bad][0])} "
            f"(and {int(bad.sum()) - 1} other out-of-range values)"
        )


# --------------------------------------------------------------------------------------------------- metrics


class ConfusionAccumulator:
    """Accumulates a [C, C] confusion matrix (rows = ground truth, columns = prediction) over images of any
    size; pixels whose ground truth is `ignore_index` are excluded.

    Backed by `keras.metrics.MeanIoU(num_classes, ignore_class=ignore_index, sparse_y_true=True,
    sparse_y_pred=True)` with int64 counts (no float32 rounding past 2**24 pixels per cell).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = _check_num_classes(num_classes)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self._metric = keras.metrics.MeanIoU(
            num_classes=self.num_classes,
            ignore_class=self.ignore_index,
            sparse_y_true=True,
            sparse_y_pred=True,
            dtype="int64",
        )

    def update(self, ground_truth: Any, prediction: Any) -> None:
        """Adds one image `[H, W]` or a batch `[B, H, W]`; both arrays must have the same shape.

        Raises ValueError on a shape mismatch, a prediction outside `[0, C)` or a ground-truth value that is
        neither a class index nor `ignore_index` (Keras would silently drop those pixels).
        """
        truth = _as_class_map(ground_truth, "ground_truth")
        pred = _as_class_map(prediction, "prediction")
        if truth.shape != pred.shape:
            raise ValueError(
                f"ground_truth and prediction must have the same shape, got ground_truth "
                f"{truth.shape} and prediction {pred.shape}"
            )
        if truth.ndim not in (2, 3):
            raise ValueError(f"class maps must have shape [H, W] or [B, H, W], got {truth.shape}")
        _check_values(pred, self.num_classes, "prediction", allow_ignore=False)
        _check_values(truth, self.num_classes, "ground_truth", allow_ignore=True, ignore_index=self.ignore_index)
        if truth.size == 0:
            return
        self._metric.update_state(truth, pred)

    def reset(self) -> None:
        self._metric.reset_state()

    @property
    def matrix(self) -> np.ndarray:
        """int64 [C, C] copy of the accumulated counts."""
        return np.asarray(keras.ops.convert_to_numpy(self._metric.total_cm)).astype(np.int64)


def segmentation_metrics(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Segmentation metrics derived from a [C, C] confusion matrix (rows = ground truth).

    Returns a JSON-ready dict (Python floats and ints only):
        `miou`: mean IoU over the classes present in ground truth or prediction (union > 0);
        `per_class_iou`: {name: IoU, or None when the class is absent from both};
        `pixel_accuracy`: trace / total; `fw_iou`: sum over c of (ground-truth pixels of c / total) * IoU_c;
        `num_pixels`: pixels counted; `num_classes`: C.

    Raises:
        ValueError: on a matrix that is not [C, C] with C = len(class_names), holds negative or non-integer
            counts, or counts no pixel at all ("no labelled pixels").
    """
    names = check_class_names(class_names)
    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {counts.shape}")
    if counts.shape[0] != len(names):
        raise ValueError(f"confusion is {counts.shape[0]}x{counts.shape[1]} but class_names has {len(names)} names")
    counts = _as_class_map(counts, "confusion")  # whole numbers, as int64
    if np.any(counts < 0):
        raise ValueError("confusion must hold non-negative counts")
    total = int(counts.sum())
    if total == 0:
        raise ValueError("confusion matrix counts no labelled pixels: nothing to score")

    true_positives = np.diag(counts).astype(np.float64)
    ground_truth = counts.sum(axis=1).astype(np.float64)  # TP + FN
    predicted = counts.sum(axis=0).astype(np.float64)  # TP + FP
    union = ground_truth + predicted - true_positives  # TP + FP + FN
    present = union > 0
    iou = np.zeros(len(names), dtype=np.float64)
    np.divide(true_positives, union, out=iou, where=present)

    return {
        "miou": float(iou[present].mean()),  # total > 0 -> at least one class is present
        "per_class_iou": {name: (float(iou[c]) if present[c] else None) for c, name in enumerate(names)},
        "pixel_accuracy": float(true_positives.sum() / total),
        "fw_iou": float(np.sum(ground_truth / total * iou)),
        "num_pixels": total,
        "num_classes": len(names),
    }


# ---------------------------------------------------------------------------------------------- colouring


def _palette() -> np.ndarray:
    """The PASCAL VOC colour map: 256 distinct colours, index 0 black; IGNORE_INDEX is set to white.

    Built from the bits of the index (bit 0 -> red, 1 -> green, 2 -> blue, from the most significant bit
    down), so every index below 256 has a different colour and none but IGNORE_INDEX is white.
    """
    colors = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colors[index] = (red, green, blue)
    colors[IGNORE_INDEX] = IGNORE_COLOR
    return colors


PALETTE = _palette()
PALETTE.setflags(write=False)


def _check_map_classes(num_classes: Any) -> int:
    num_classes = _check_num_classes(num_classes)
    if num_classes > IGNORE_INDEX:
        raise ValueError(
            f"num_classes must be at most {IGNORE_INDEX} (index {IGNORE_INDEX} means 'ignore'), got {num_classes}"
        )
    return num_classes


def _class_map_2d(class_map: Any, num_classes: int, name: str) -> np.ndarray:
    array = _as_class_map(class_map, name)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [H, W], got {array.shape}")
    _check_values(array, num_classes, name, allow_ignore=True)
    return array


def colorize(class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """int [H, W] class map -> uint8 [H, W, 3] RGB with a fixed palette (`PALETTE`, the PASCAL VOC colours):
    class 0 black, IGNORE_INDEX white, every class its own colour. Deterministic."""
    num_classes = _check_map_classes(num_classes)
    array = _class_map_2d(class_map, num_classes, "class_map")
    return PALETTE[array]


def _rgb_uint8(image: Any) -> np.ndarray:
    """uint8 [H, W, 3] from an RGB image (grayscale, one-channel, RGBA and floats in [0, 1] also accepted)."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"image must be [H, W, 3] (or [H, W], [H, W, 1], [H, W, 4]), got shape {array.shape}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"image must hold numbers, got dtype {array.dtype}")
    values = np.nan_to_num(array.astype(np.float64))
    if np.issubdtype(array.dtype, np.floating) and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0  # floats in [0, 1]
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, class_map: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """uint8 [H, W, 3]: the photo blended with `colorize(class_map)` (weight `alpha`) where the class is not
    0; class-0 pixels keep the photo unchanged. Ignored pixels (IGNORE_INDEX) blend with white.

    Raises ValueError when the image and the class map differ in height/width (naming both shapes).
    """
    num_classes = _check_map_classes(num_classes)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    photo = _rgb_uint8(image)
    labels = _class_map_2d(class_map, num_classes, "class_map")
    if photo.shape[:2] != labels.shape:
        raise ValueError(
            f"image and class_map must have the same height and width, got image {photo.shape} "
            f"and class_map {labels.shape}"
        )
    result = photo.copy()
    coloured = labels != 0
    blended = (1.0 - alpha) * photo[coloured].astype(np.float64) + alpha * PALETTE[labels[coloured]]
    result[coloured] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return result


def write_overlay_png(image: Any, class_map: Any, num_classes: int, path: str | os.PathLike) -> Path:
    """`overlay(image, class_map, num_classes)` written atomically as a PNG at the image's resolution."""
    blended = overlay(image, class_map, num_classes)
    buffer = io.BytesIO()
    Image.fromarray(blended, mode="RGB").save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------------- grid


def _legend_classes(pixel_counts: np.ndarray) -> tuple[list[int], int]:
    """Non-background classes that occur, at most MAX_LEGEND_ENTRIES (the most frequent), by index."""
    occurring = [c for c in np.flatnonzero(pixel_counts) if c != 0]
    if len(occurring) <= MAX_LEGEND_ENTRIES:
        return [int(c) for c in occurring], 0
    by_frequency = sorted(occurring, key=lambda c: (-pixel_counts[c], c))
    kept = sorted(int(c) for c in by_frequency[:MAX_LEGEND_ENTRIES])
    return kept, len(occurring) - len(kept)


def plot_segmentation_grid(
    samples: Sequence[tuple[Any, Any, Any]],
    class_names: Sequence[str],
    path: str | os.PathLike,
) -> Path:
    """One row per `(image, ground_truth, prediction)` sample: "image | ground truth | prediction", the class
    maps drawn as overlays on the photo (class 0 uncoloured, ignored pixels whitish), as a PNG.

    `image` is uint8 [H, W, 3]; the class maps are int [H, W] at the image's resolution (either may be None,
    leaving that panel as the plain photo). A legend lists the colours of the classes that occur (at most
    MAX_LEGEND_ENTRIES, the most frequent), plus "ignore" when ground truth has unlabelled pixels. Written
    atomically; with no samples the PNG says "nothing to show".

    Long: the matplotlib calls of one figure, in order.
    """
    names = check_class_names(class_names)
    num_classes = _check_map_classes(len(names))
    samples = list(samples)
    rows: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    pixel_counts = np.zeros(num_classes, dtype=np.int64)
    has_ignore = False
    for index, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 3:
            raise ValueError(f"samples[{index}] must be an (image, ground_truth, prediction) triple")
        image, truth, pred = sample
        photo = _rgb_uint8(image)
        maps = []
        for name, values in (("ground_truth", truth), ("prediction", pred)):
            if values is None:
                maps.append(None)
                continue
            labels = _class_map_2d(values, num_classes, f"samples[{index}] {name}")
            if labels.shape != photo.shape[:2]:
                raise ValueError(
                    f"samples[{index}]: image {photo.shape} and {name} {labels.shape} must have the "
                    "same height and width"
                )
            valid = labels[labels != IGNORE_INDEX]
            pixel_counts += np.bincount(valid.reshape(-1), minlength=num_classes)
            has_ignore |= bool(valid.size != labels.size)
            maps.append(labels)
        rows.append((photo, maps[0], maps[1]))
    if not rows:
        return message_png(path, "nothing to show")

    aspect = max(min(np.mean([photo.shape[0] / max(photo.shape[1], 1) for photo, _, _ in rows]), 3.0), 0.3)
    panel_width = 3.0
    legend, hidden = _legend_classes(pixel_counts)
    legend_rows = math.ceil((len(legend) + int(has_ignore)) / 5) if (legend or has_ignore) else 0
    figure = new_figure(3 * panel_width, len(rows) * (panel_width * aspect + 0.3) + 0.3 * legend_rows + 0.4)
    for row, (photo, truth, pred) in enumerate(rows):
        panels = [
            ("image", photo),
            ("ground truth", overlay(photo, truth, num_classes) if truth is not None else photo),
            ("prediction", overlay(photo, pred, num_classes) if pred is not None else photo),
        ]
        for column, (title, picture) in enumerate(panels):
            axes = figure.add_subplot(len(rows), 3, row * 3 + column + 1)
            axes.imshow(picture, interpolation="nearest")
            missing = (column == 1 and truth is None) or (column == 2 and pred is None)
            axes.set_title(f"#{row} {title}" + (" (none)" if missing else ""), fontsize=8)
            axes.axis("off")

    handles = [Patch(facecolor=PALETTE[c] / 255.0, edgecolor="#555555", label=names[c]) for c in legend]
    if has_ignore:
        handles.append(Patch(facecolor=np.asarray(IGNORE_COLOR) / 255.0, edgecolor="#555555", label="ignore"))
    if handles:
        title = f"{names[0]} (class 0) uncoloured" + (f"; {hidden} more classes not listed" if hidden else "")
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 5),
            fontsize=7,
            title=title,
            title_fontsize=7,
            frameon=False,
        )
    return save_figure(figure, path)
