"""The labelled data of a cross-validation: the checked train and validation sources pooled into one, and its K
folds (stratified by class for single-label classification, by image otherwise), a pure function of the seed.

Pooling works on the sources the readers return (`kerascv_tl.data.records`, `mask_records`, `multi_label`):
one small function per kind joins two of them; a TFDS split is refused (it has no examples to subset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.mask_records import SegmentationSource
from kerascv_tl.data.multi_label import MultiLabelSource
from kerascv_tl.data.records import DetectionSource, ImageSource

__all__ = ["fold_indices", "fold_sources", "is_stratified", "pool_sources"]


def _join_images(a: ImageSource, b: ImageSource, description: str) -> ImageSource:
    return ImageSource(
        list(a.class_names),
        np.concatenate([a.labels, b.labels]),
        list(a.paths) + list(b.paths),
        description=description,
    )


def _join_multi_label(a: MultiLabelSource, b: MultiLabelSource, description: str) -> MultiLabelSource:
    return MultiLabelSource(
        list(a.class_names), np.concatenate([a.labels, b.labels]), list(a.paths) + list(b.paths), description
    )


def _join_detection(a: DetectionSource, b: DetectionSource, description: str) -> DetectionSource:
    return DetectionSource(list(a.records) + list(b.records), list(a.class_names), description)


def _join_segmentation(a: SegmentationSource, b: SegmentationSource, description: str) -> SegmentationSource:
    same_lookup = (a.lookup is None and b.lookup is None) or (
        a.lookup is not None and b.lookup is not None and np.array_equal(a.lookup, b.lookup)
    )
    if not same_lookup:
        raise DataError("the training and validation masks map their values to classes differently; cannot pool them")
    lookup = None if a.lookup is None else a.lookup.copy()
    return SegmentationSource(list(a.records) + list(b.records), list(a.class_names), description, lookup)


_JOINS: dict[type, Callable[[Any, Any, str], Any]] = {
    ImageSource: _join_images,
    MultiLabelSource: _join_multi_label,
    DetectionSource: _join_detection,
    SegmentationSource: _join_segmentation,
}


def pool_sources(train: Any, val: Any) -> Any:
    """All the labelled data: the training examples followed by the validation ones, as one source."""
    join = _JOINS.get(type(train))
    if join is None or type(val) is not type(train):
        raise DataError(f"cross-validation cannot pool a {type(train).__name__} with a {type(val).__name__}")
    if train.image_paths() is None or val.image_paths() is None:
        raise DataError(
            "cross-validation splits image files into folds; a TFDS split has none (export it to folders, or train "
            "with its own validation split)"
        )
    if list(train.class_names) != list(val.class_names):
        raise DataError(f"the training classes {train.class_names} differ from the validation ones {val.class_names}")
    return join(train, val, f"all the labelled data ({len(train)} training + {len(val)} validation examples)")


def is_stratified(source: Any) -> bool:
    """Folds keep class proportions where each example has one class (single-label classification)."""
    labels = getattr(source, "labels", None)
    return isinstance(source, ImageSource) and labels is not None and np.ndim(labels) == 1


def fold_indices(source: Any, folds: int, seed: int) -> list[np.ndarray]:
    """K sorted index arrays that partition the source: each example validates in exactly one fold.

    Stratified (`is_stratified`): each class's examples, shuffled, are dealt to the folds in turn, continuing
    from where the previous class stopped, so folds differ in size by at most one and each class's count per
    fold by at most one. Otherwise the shuffled examples are dealt the same way.
    """
    n = len(source)
    if folds < 2:
        raise DataError(f"--folds must be at least 2 (got {folds})")
    if folds > n:
        raise DataError(f"{folds} folds need at least {folds} labelled examples; there are {n}")
    rng = np.random.default_rng(seed)
    if is_stratified(source):
        labels = np.asarray(source.labels)
        order = []
        for label in range(len(source.class_names)):
            members = np.flatnonzero(labels == label)
            rng.shuffle(members)
            order.append(members)
        dealt = np.concatenate(order) if order else np.arange(0)
    else:
        dealt = rng.permutation(n)
    return [np.sort(dealt[k::folds]).astype(np.int64) for k in range(folds)]


def fold_sources(pooled: Any, validation: np.ndarray, fold: int, folds: int) -> tuple[Any, Any]:
    """(train, val) of one fold: the pooled examples outside `validation`, and those in it."""
    held = set(validation.tolist())
    rest = np.asarray([i for i in range(len(pooled)) if i not in held], np.int64)
    return (
        pooled.subset(rest, f"fold {fold}/{folds} training ({len(rest)} of {len(pooled)} examples)"),
        pooled.subset(validation, f"fold {fold}/{folds} validation ({len(validation)} of {len(pooled)} examples)"),
    )
