"""RetinaNet anchor shapes fitted to the training boxes.

KerasHub's RetinaNet places, at every location of every pyramid level, anchors of 3 scales and the aspect ratios
(height / width) [0.5, 1.0, 2.0]. A box is learnt from the anchors it overlaps with IoU >= 0.5; pedestrians (height
about 2.75 x width) overlap the 2.0 anchors only partly and the others not at all, so each box has few positive
anchors. `fitted_aspect_ratios` places the ratios where the training boxes are instead (`head.anchor_aspect_ratios:
auto`; on pennfudan it did not beat KerasHub's ratios, docs/tasks.md, so it is not the default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from kerascv_tl.config import KERAS_HUB_ASPECT_RATIOS

FIT_QUANTILES = (1 / 6, 1 / 2, 5 / 6)  # three ratios, each the middle of a third of the boxes
MIN_BOXES_TO_FIT = 3


def fitted_aspect_ratios(boxes: Iterable[np.ndarray], quantiles: Sequence[float] = FIT_QUANTILES) -> list[float]:
    """Height / width ratios at `quantiles` of the training boxes' log ratio, rounded to 2 decimals.

    `boxes`: arrays [N, 4] of xyxy boxes (any pixel scale: letterboxing keeps the ratio). Boxes without area are
    skipped; with fewer than MIN_BOXES_TO_FIT boxes left, KerasHub's default ratios."""
    stacked = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    all_boxes = np.concatenate(stacked) if stacked else np.zeros((0, 4))
    widths = all_boxes[:, 2] - all_boxes[:, 0]
    heights = all_boxes[:, 3] - all_boxes[:, 1]
    keep = (widths > 0) & (heights > 0)
    if keep.sum() < MIN_BOXES_TO_FIT:
        return list(KERAS_HUB_ASPECT_RATIOS)
    log_ratios = np.log(heights[keep] / widths[keep])
    return [round(float(np.exp(q)), 2) for q in np.quantile(log_ratios, quantiles)]
