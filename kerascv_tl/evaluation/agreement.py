"""How closely two models' prediction rows agree (an export against its Keras model): the figures
`kerascv-tl export --verify` prints and the parity tests hold to. Pure NumPy on the tasks' result rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["box_agreement", "label_agreement", "pixel_agreement"]


def label_agreement(
    reference: Sequence[dict], candidate: Sequence[dict], truths: Sequence[str] | None = None
) -> dict[str, float]:
    """Classification rows (`labels` best first, `scores`): top-1 agreement, the largest probability difference
    over every class both rows list, and with `truths` (each image's true class name) both accuracies."""
    same = [r["labels"][:1] == c["labels"][:1] for r, c in zip(reference, candidate)]
    largest = 0.0
    for r, c in zip(reference, candidate):
        theirs = dict(zip(c["labels"], c["scores"]))
        diffs = [abs(score - theirs[label]) for label, score in zip(r["labels"], r["scores"]) if label in theirs]
        largest = max([largest, *diffs])
    figures = {"top1_agreement": float(np.mean(same)) if same else 0.0, "max_probability_difference": largest}
    if truths is not None:
        figures["accuracy_reference"] = float(np.mean([r["labels"][0] == t for r, t in zip(reference, truths)]))
        figures["accuracy_export"] = float(np.mean([c["labels"][0] == t for c, t in zip(candidate, truths)]))
    return figures


def box_agreement(reference: Sequence[dict], candidate: Sequence[dict], tolerance: float = 1.0) -> dict[str, float]:
    """Detection rows (`boxes`: [{"label", "score", "box"}]): the fraction of reference boxes that the export
    also found with the same label and every coordinate within `tolerance` pixels (greedy, best score first),
    the fraction of images with as many boxes, and the largest score difference of matched boxes."""
    total = matched = same_count = 0
    largest = 0.0
    for r, c in zip(reference, candidate):
        same_count += len(r["boxes"]) == len(c["boxes"])
        free = list(c["boxes"])
        for box in r["boxes"]:
            total += 1
            for i, other in enumerate(free):
                close = np.abs(np.subtract(box["box"], other["box"])).max() <= tolerance
                if other["label"] == box["label"] and close:
                    matched += 1
                    largest = max(largest, abs(box["score"] - other["score"]))
                    free.pop(i)
                    break
    return {
        "boxes_reference": float(total),
        "boxes_matched": matched / total if total else 1.0,
        "same_box_count": same_count / max(len(reference), 1),
        "max_score_difference": largest,
    }


def pixel_agreement(reference: Sequence[dict], candidate: Sequence[dict]) -> dict[str, float]:
    """Segmentation rows (`mask`: int32 [H, W]): the fraction of pixels, over all images, with the same class."""
    same = sum(int((r["mask"] == c["mask"]).sum()) for r, c in zip(reference, candidate))
    total = sum(int(r["mask"].size) for r in reference)
    return {"pixel_agreement": same / total if total else 1.0}
