"""COCO-style detection metrics, computed by pycocotools (the overlays are in `detection_plots`).

Metrics are never re-implemented here: the ground truth and the detections are turned into in-memory COCO
objects and scored by `pycocotools.cocoeval.COCOeval` (the reference implementation), whose console output
is swallowed.

Conventions:

* Boxes are `[x1, y1, x2, y2]` in pixels (x to the right, y down, `(0, 0)` the top-left corner of the
  image); they are converted to COCO's `[x, y, w, h]`. Labels are 0-based class indices; the COCO category
  id of class `i` is `i + 1`.
* An entry whose label is -1 is padding (the KerasCV / KerasHub convention for fixed-size box tensors) and
  is dropped, together with its box and score. Any other label outside `[0, C)` is an error.
* A ground-truth box with `x2 < x1` or `y2 < y1` is an error. A predicted box like that is scored as a box
  of zero width/height (it matches nothing) rather than aborting an evaluation.
* COCO's defaults apply: IoU thresholds 0.50:0.05:0.95, 101-point interpolated precision, at most 100
  detections per image (the highest-scoring ones), area range "all" for the headline numbers.
* A class with no ground-truth box anywhere has no AP: pycocotools reports -1 for it, which becomes `None`
  in `per_class`, and the headline numbers average over the classes that do have ground truth (exactly as
  pycocotools does; predictions of such a class are ignored). When no class has ground truth at all, the
  headline numbers are `None` too.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kerascv_tl.evaluation.labels import check_class_names

PADDING_LABEL = -1

# Index of each headline number in COCOeval.stats (bbox).
_STATS = {"map_50_95": 0, "map_50": 1, "map_75": 2, "ar_100": 8}


# ------------------------------------------------------------------------------------------------ validation


def _as_boxes(values: Any, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64) if values is not None else np.zeros((0, 4))
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape [N, 4] (x1, y1, x2, y2), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: boxes must be finite, got NaN or inf")
    return array


def _as_labels(values: Any, count: int, num_classes: int, where: str) -> np.ndarray:
    array = np.asarray(values) if values is not None else np.zeros(0, dtype=np.int64)
    if array.size == 0 and count == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"{where}: labels must have shape [N], got shape {array.shape}")
    if array.shape[0] != count:
        raise ValueError(f"{where}: got {count} boxes but {array.shape[0]} labels")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{where}: labels must hold integer class indices, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{where}: labels must hold integer class indices, got non-integer values")
    labels = array.astype(np.int64)
    bad = (labels != PADDING_LABEL) & ((labels < 0) | (labels >= num_classes))
    if np.any(bad):
        raise ValueError(
            f"{where}: labels must be class indices in [0, {num_classes}) (or -1 for padding), "
            f"got {int(labels[bad][0])}"
        )
    return labels


def _as_scores(values: Any, count: int, where: str) -> np.ndarray:
    if values is None:
        raise ValueError(f"{where}: missing 'scores'")
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 and count == 0:
        return np.zeros(0, dtype=np.float64)
    if array.ndim != 1 or array.shape[0] != count:
        raise ValueError(f"{where}: scores must have shape [{count}] (one per box), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: scores must be finite, got NaN or inf")
    return array


def _entry(entry: Any, where: str) -> Mapping:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a dict with 'boxes' and 'labels', got {type(entry).__name__}")
    for key in ("boxes", "labels"):
        if key not in entry:
            raise ValueError(f"{where} has no {key!r} key (keys: {sorted(map(str, entry))})")
    return entry


def checked_ground_truth(entry: Any, num_classes: int, where: str) -> dict[str, Any]:
    """Validated {"boxes": [N, 4], "labels": [N], "width", "height"} with padding rows dropped."""
    entry = _entry(entry, where)
    boxes = _as_boxes(entry["boxes"], where)
    labels = _as_labels(entry["labels"], boxes.shape[0], num_classes, where)
    keep = labels != PADDING_LABEL
    boxes, labels = boxes[keep], labels[keep]
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if np.any(inverted):
        raise ValueError(
            f"{where}: ground-truth boxes must have x2 >= x1 and y2 >= y1 (xyxy), got {boxes[inverted][0].tolist()}"
        )
    sizes = {}
    for key in ("width", "height"):
        value = entry.get(key)
        if value is None:
            continue
        try:
            number = float(np.asarray(value).reshape(()))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} must be a positive number, got {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{where}: {key} must be a positive number, got {value!r}")
        sizes[key] = int(round(number))
    return {"boxes": boxes, "labels": labels, **sizes}


def checked_prediction(entry: Any, num_classes: int, where: str) -> dict[str, np.ndarray]:
    """Validated {"boxes": [K, 4], "scores": [K], "labels": [K]} with padding rows dropped."""
    entry = _entry(entry, where)
    if "scores" not in entry:
        raise ValueError(f"{where} has no 'scores' key (keys: {sorted(map(str, entry))})")
    boxes = _as_boxes(entry["boxes"], where)
    labels = _as_labels(entry["labels"], boxes.shape[0], num_classes, where)
    scores = _as_scores(entry["scores"], boxes.shape[0], where)
    keep = labels != PADDING_LABEL
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def coco_xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)]


# --------------------------------------------------------------------------------------------------- metrics


def _ap_or_none(value: float) -> float | None:
    return None if value < 0 else float(value)  # pycocotools uses -1 for "no ground truth"


def coco_detection_metrics(
    ground_truth: Sequence[Mapping[str, Any]],
    predictions: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
) -> dict:
    """COCO bbox metrics of `predictions` against `ground_truth`, computed by pycocotools.

    Args:
        ground_truth: one dict per image, `{"boxes": float [N, 4] xyxy pixels, "labels": int [N]}`, optionally
            with "width" and "height" (pixels).
        predictions: one dict per image, same length and order, `{"boxes": [K, 4] xyxy, "scores": [K],
            "labels": [K]}`.
        class_names: C distinct names, index i naming class i.

    Returns:
        A JSON-ready dict: `map_50_95`, `map_50`, `map_75` (AP averaged over classes with ground truth),
        `ar_100` (recall with at most 100 detections per image), `per_class` ({name: AP@[.5:.95] or None when
        the class has no ground truth}), `num_images`, `num_ground_truth`, `num_predictions`.

    Raises:
        ValueError: on mismatched lengths, malformed boxes/labels/scores or out-of-range labels.

    Long: pycocotools' ground-truth and result objects are built, evaluated and read in one place.
    """
    names = check_class_names(class_names)
    if isinstance(ground_truth, Mapping) or isinstance(predictions, Mapping):
        raise ValueError("ground_truth and predictions must be lists with one dict per image, not a single dict")
    ground_truth, predictions = list(ground_truth), list(predictions)
    if len(ground_truth) != len(predictions):
        raise ValueError(
            f"ground_truth has {len(ground_truth)} images but predictions has {len(predictions)}: "
            "need one entry per image, in the same order"
        )
    if not ground_truth:
        raise ValueError("ground_truth is empty: need at least one image")
    num_classes = len(names)
    truths = [checked_ground_truth(e, num_classes, f"ground_truth[{i}]") for i, e in enumerate(ground_truth)]
    preds = [checked_prediction(e, num_classes, f"predictions[{i}]") for i, e in enumerate(predictions)]

    # Image and annotation ids start at 1: COCOeval treats a matched ground-truth id of 0 as "unmatched".
    images, annotations, detections = [], [], []
    for index, (truth, pred) in enumerate(zip(truths, preds)):
        image_id = index + 1
        images.append({"id": image_id, **{k: truth[k] for k in ("width", "height") if k in truth}})
        for box, label in zip(truth["boxes"], truth["labels"]):
            xywh = coco_xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(pred["boxes"], pred["scores"], pred["labels"]):
            detections.append(
                {"image_id": image_id, "category_id": int(label) + 1, "bbox": coco_xywh(box), "score": float(score)}
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            # loadRes() fails on an empty list (it reads anns[0]); an empty result set scores 0 everywhere.
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(images), "annotations": [], "categories": list(categories)}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    stats = evaluator.stats
    params = evaluator.params
    # precision: [T iou thresholds, R recall points, K classes, A area ranges, M max-dets]
    precision = evaluator.eval["precision"]
    area = params.areaRngLbl.index("all")
    max_dets = params.maxDets.index(100)
    per_class: dict[str, float | None] = {}
    for k, category_id in enumerate(params.catIds):
        values = precision[:, :, k, area, max_dets]
        values = values[values > -1]
        per_class[names[category_id - 1]] = float(np.mean(values)) if values.size else None

    result: dict[str, Any] = {key: _ap_or_none(float(stats[i])) for key, i in _STATS.items()}
    result["per_class"] = per_class
    result["num_images"] = len(truths)
    result["num_ground_truth"] = len(annotations)
    result["num_predictions"] = len(detections)
    return result
