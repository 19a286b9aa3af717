"""Box geometry in NumPy for the detection readers (the tf.data side lives in `detection_pipeline.py`).

Boxes are float32 [N, 4] in Keras' "xyxy" format (`keras.utils.bounding_boxes` vocabulary): absolute
pixel coordinates `(x_min, y_min, x_max, y_max)` with x_max and y_max exclusive, so a box covering
pixel columns 3..5 is (3, ., 6, .) and its width is x_max - x_min.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BOX_FORMAT", "clip_boxes", "empty_boxes", "valid_box_mask", "xywh_to_xyxy"]

BOX_FORMAT = "xyxy"


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[x, y, w, h] (COCO) -> [x_min, y_min, x_max, y_max]."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clips xyxy boxes to the image [0, width] x [0, height]."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    limits = np.array([width, height, width, height], np.float32)
    return np.clip(boxes, 0.0, limits)


def valid_box_mask(boxes: np.ndarray) -> np.ndarray:
    """True where the box has a positive width and height."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
