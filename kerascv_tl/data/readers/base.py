"""The reader skeleton every format shares: read item by item, report or raise what is wrong, keep the rest.

`collect(items, read_one, problems, action)` is the one loop: `read_one(item)` for each item in order; a
`DataError` is raised at once without a `ProblemLog` (strict readers), or recorded there with `action`
(what `on_bad: skip` does about it) and the item left out. It is a generator, so what the caller does with
one result (e.g. remember an id) is done before the next item is read.

The detection readers also share the box hygiene (`clean_boxes`: clip to the image, drop and report boxes
with no area) and the end (`detection_source`: the summary warning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

from kerascv_tl.data.boxes import clip_boxes, valid_box_mask
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.problems import ProblemLog, skip_or_raise
from kerascv_tl.data.records import DetectionRecord, DetectionSource

__all__ = ["BOX_SLACK", "clean_boxes", "cleaned_record", "collect", "detection_source"]

log = logging.getLogger(__name__)

BOX_SLACK = 1.0  # pixels a box may reach past the image edge (rounding) before a check reports it

T = TypeVar("T")
R = TypeVar("R")


def collect(
    items: Iterable[T],
    read_one: Callable[[T], R],
    problems: ProblemLog | None,
    action: str | Callable[[T], str] = "file skipped",
) -> Iterator[R]:
    """`read_one(item)` for each item whose read raises no DataError; a failing item is reported in `problems`
    with `action` (a text, or a function of the item giving it) and left out, or raised without `problems`."""
    for item in items:
        try:
            result = read_one(item)
        except DataError as error:
            skip_or_raise(problems, error, action if isinstance(action, str) else action(item))
            continue
        yield result


def clean_boxes(
    path: str,
    boxes: np.ndarray,
    labels: np.ndarray,
    width: int,
    height: int,
    context: str = "",
    problems: ProblemLog | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Clips to the image and drops zero/negative-area boxes. Returns boxes, labels, dropped.

    Dropped boxes are logged, or with `problems` reported one by one, as are boxes reaching more than
    BOX_SLACK pixels outside the image (kept, clipped)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, np.int32).reshape(-1)
    if not np.isfinite(boxes).all():
        raise DataError(f"{path}: box coordinates are not finite numbers{context}", path=path)
    clipped = clip_boxes(boxes, width, height)
    keep = valid_box_mask(clipped)
    dropped = int((~keep).sum())
    if problems is not None:
        limits = np.array([0, 0, width, height], np.float32)
        overhang = np.maximum(
            np.maximum(-boxes[:, :2], 0).max(axis=1), np.maximum(boxes[:, 2:] - limits[2:], 0).max(axis=1)
        )
        for box, kept, over in zip(boxes.tolist(), keep, overhang):
            box = [round(v, 1) for v in box]
            if not kept:
                problems.add(
                    path,
                    f"box {box} (xyxy) has no area inside the {width}x{height} image (zero or "
                    f"negative size, or outside it){context}",
                    "box dropped",
                )
            elif over > BOX_SLACK:
                problems.add(
                    path,
                    f"box {box} (xyxy) reaches {over:.0f} px outside the {width}x{height} image{context}",
                    "box clipped to the image",
                )
    elif dropped:
        log.warning(
            "%s: dropped %d box(es) with no area inside the %dx%d image%s: %s",
            path,
            dropped,
            width,
            height,
            context,
            boxes[~keep].tolist(),
        )
    return clipped[keep], labels[keep], dropped


def cleaned_record(
    path, boxes, labels, width: int, height: int, context: str, problems: ProblemLog | None
) -> tuple[DetectionRecord, int]:
    """(the record with `clean_boxes`' boxes, how many boxes were dropped)."""
    boxes, labels, dropped = clean_boxes(str(path), boxes, labels, width, height, context, problems)
    return DetectionRecord(str(path), boxes, labels, width, height), dropped


def detection_source(
    read: Iterable[tuple[DetectionRecord, int]], class_names, description: str, problems: ProblemLog | None = None
) -> DetectionSource:
    """The source of the (record, dropped boxes) pairs a reader `collect`ed; one warning sums the drops."""
    records, dropped = [], 0
    for record, count in read:
        records.append(record)
        dropped += count
    if dropped and problems is None:  # with a log, each box is reported there
        log.warning("%s: dropped %d degenerate box(es) in all", description, dropped)
    return DetectionSource(records, list(class_names), description, dropped)
