"""`data.keep_classes`: train on some of a dataset's classes.

The kept classes become the class list, in the order `keep_classes` names them (spelled as the data spells them,
matched case-insensitively; a name the data lacks is a `DataError` listing the names it has). What the other
classes had is dropped and counted in one INFO line per source: classification drops their images, detection
their boxes (an image left without boxes stays, as a negative), segmentation turns their pixels into background,
class 0 (a kept "background" / "__background__" class moved first, or a "background" class inserted first);
ignored pixels stay ignored. Applied where a source is read (`kerascv_tl.data.readers`), so training,
validation and `kerascv-tl evaluate` data are filtered alike.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.mask_records import IGNORE_INDEX, SegmentationSource
from kerascv_tl.data.records import DetectionRecord, DetectionSource, ImageSource

log = logging.getLogger(__name__)

__all__ = ["BACKGROUND_NAMES", "keep_classes", "kept_indices"]

BACKGROUND_NAMES = ("background", "__background__")


def kept_indices(keep: Sequence[str], class_names: Sequence[str], where: str) -> list[int]:
    """The index in `class_names` of each kept name (case-insensitive); a name the data lacks is a DataError
    naming it, `where` (the data's path) and every class name the data has."""
    index = {str(name).casefold(): i for i, name in enumerate(class_names)}
    missing = [str(name) for name in keep if str(name).casefold() not in index]
    if missing:
        raise DataError(
            f"{where}: data.keep_classes names {', '.join(missing)}, which this data does not have; "
            f"its {len(class_names)} classes: {', '.join(map(str, class_names))}",
            path=where or None,
        )
    return [index[str(name).casefold()] for name in keep]


def keep_classes(source, keep: Sequence[str] | None):
    """`source` restricted to the `keep` classes (`source` itself when `keep` is None); logs what was dropped."""
    if keep is None:
        return source
    if isinstance(source, DetectionSource):
        return _detection(source, keep)
    if isinstance(source, SegmentationSource):
        return _segmentation(source, keep)
    if isinstance(source, ImageSource):
        return _classification(source, keep)
    raise DataError(f"{source.description}: data.keep_classes is not offered for this kind of data")


def _summary(keep: Sequence[str], total: int, description: str) -> str:
    return f"keep_classes {', '.join(map(str, keep))}: {len(keep)} of {total} classes kept in {description}"


def _remap(num_classes: int, kept: list[int]) -> np.ndarray:
    """Old class index -> new one (the position in `kept`), -1 for the classes left out."""
    remap = np.full(num_classes, -1, np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    return remap


def _detection(source: DetectionSource, keep: Sequence[str]) -> DetectionSource:
    kept = kept_indices(keep, source.class_names, source.description)
    remap = _remap(len(source.class_names), kept)
    records, dropped = [], 0
    for record in source.records:
        labels = remap[record.labels]
        chosen = labels >= 0
        dropped += int((~chosen).sum())
        records.append(DetectionRecord(record.path, record.boxes[chosen], labels[chosen], record.width, record.height))
    without = sum(1 for r in records if len(r.labels) == 0)
    log.info(
        "%s; %s boxes of other classes dropped, %s of %s images now have no boxes",
        _summary(keep, len(source.class_names), source.description),
        f"{dropped:,}",
        f"{without:,}",
        f"{len(records):,}",
    )
    return dataclasses.replace(source, records=records, class_names=[source.class_names[i] for i in kept])


def _segmentation(source: SegmentationSource, keep: Sequence[str]) -> SegmentationSource:
    """Composes the source's lookup (raw mask value -> class index) with old class -> new class, so the masks
    are read once, through one table. Background is class 0, as the overlays and the segmenter expect."""
    kept = kept_indices(keep, source.class_names, source.description)
    old_count = len(source.class_names)
    backgrounds = [i for i in kept if source.class_names[i].casefold() in BACKGROUND_NAMES]
    order = backgrounds[:1] + [i for i in kept if i not in backgrounds[:1]]
    names = [source.class_names[i] for i in order]
    if not backgrounds:
        names, order = ["background", *names], [-1, *order]
    new_of_old = np.zeros(old_count, np.int64)  # every class left out -> background, class 0
    for new, old in enumerate(order):
        if old >= 0:
            new_of_old[old] = new
    raw = np.arange(old_count) if source.lookup is None else np.asarray(source.lookup, np.int64)
    known = raw < old_count  # IGNORE_INDEX entries (and, without a lookup, nothing else) stay ignored
    lookup = np.where(known, new_of_old[np.where(known, raw, 0)], IGNORE_INDEX).astype(np.uint8)
    log.info(
        "%s; the pixels of %s other classes become %r (class 0)",
        _summary(keep, old_count, source.description),
        f"{old_count - len(kept):,}",
        names[0],
    )
    return dataclasses.replace(source, class_names=names, lookup=lookup)


def _classification(source: ImageSource, keep: Sequence[str]) -> ImageSource:
    if source.paths is None:
        raise DataError(
            f"{source.description}: data.keep_classes is not offered for TFDS classification splits (their labels "
            "are read as the images are decoded); use a class-per-folder tree or CSV"
        )
    kept = kept_indices(keep, source.class_names, source.description)
    labels = _remap(len(source.class_names), kept)[source.labels]
    chosen = np.flatnonzero(labels >= 0)
    log.info(
        "%s; %s images of other classes dropped, %s kept",
        _summary(keep, len(source.class_names), source.description),
        f"{len(labels) - len(chosen):,}",
        f"{len(chosen):,}",
    )
    return ImageSource(
        [source.class_names[i] for i in kept],
        labels[chosen],
        [source.paths[i] for i in chosen],
        description=source.description,
    )
