"""`data.keep_classes`: train on some of a dataset's classes.

The kept classes become the class list, in the order `keep_classes` names them (spelled as the data spells them,
matched case-insensitively). What the other classes had is dropped and counted in the log: classification drops
their images, detection their boxes (an image left without boxes stays, as a negative), segmentation turns their
pixels into background (class 0: a kept "background" class, or one inserted first); ignored pixels stay ignored.
Applied where a source is read (`kerascv_tl.data.readers`), so training, validation and `kerascv-tl evaluate`
data are filtered alike.
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

__all__ = ["keep_classes"]

BACKGROUND_NAMES = ("background", "__background__")


def kept_indices(keep: Sequence[str], class_names: Sequence[str], where: str) -> list[int]:
    """The index in `class_names` of each kept name (case-insensitive); a name the data lacks is a DataError."""
    index = {str(name).casefold(): i for i, name in enumerate(class_names)}
    missing = [name for name in keep if name.casefold() not in index]
    if missing:
        shown = ", ".join(map(str, class_names[:40])) + (", ..." if len(class_names) > 40 else "")
        raise DataError(f"{where}: data.keep_classes names {', '.join(missing)}, not a class of this data ({shown})")
    return [index[name.casefold()] for name in keep]


def keep_classes(source, keep: Sequence[str] | None):
    """`source` restricted to the `keep` classes (`source` itself when `keep` is None)."""
    if keep is None:
        return source
    if isinstance(source, DetectionSource):
        return _detection(source, keep)
    if isinstance(source, SegmentationSource):
        return _segmentation(source, keep)
    if isinstance(source, ImageSource):
        return _classification(source, keep)
    raise DataError(f"{source.description}: data.keep_classes is not offered for this kind of data")


def _summary(keep: Sequence[str], total: int) -> str:
    return f"keep_classes {', '.join(keep)}: {len(keep)} of {total} classes kept"


def _detection(source: DetectionSource, keep: Sequence[str]) -> DetectionSource:
    kept = kept_indices(keep, source.class_names, source.description)
    remap = np.full(len(source.class_names), -1, np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    records, dropped, emptied = [], 0, 0
    for record in source.records:
        new_labels = remap[record.labels]
        mask = new_labels >= 0
        dropped += int((~mask).sum())
        emptied += int(len(record.labels) > 0 and not mask.any())
        records.append(DetectionRecord(record.path, record.boxes[mask], new_labels[mask], record.width, record.height))
    names = [source.class_names[i] for i in kept]
    without = sum(1 for r in records if len(r.labels) == 0)
    log.info(
        "%s (%s): %d box(es) of other classes dropped; %d of %d images have no boxes now (%d emptied by the filter)",
        _summary(keep, len(source.class_names)),
        source.description,
        dropped,
        without,
        len(records),
        emptied,
    )
    return dataclasses.replace(source, records=records, class_names=names)


def _segmentation(source: SegmentationSource, keep: Sequence[str]) -> SegmentationSource:
    kept = kept_indices(keep, source.class_names, source.description)
    old_count = len(source.class_names)
    background = next((i for i in kept if source.class_names[i].casefold() in BACKGROUND_NAMES), None)
    if background is None:
        names = ["background"] + [source.class_names[i] for i in kept]
        remap = np.zeros(old_count, np.int64)
        remap[kept] = np.arange(1, len(kept) + 1)
    else:
        names = [source.class_names[i] for i in kept]
        remap = np.full(old_count, kept.index(background), np.int64)
        remap[kept] = np.arange(len(kept))
    base = np.arange(old_count) if source.lookup is None else np.asarray(source.lookup, np.int64)
    valid = (base >= 0) & (base < old_count)
    lookup = np.where(valid, remap[np.where(valid, base, 0)], IGNORE_INDEX).astype(np.uint8)
    merged = [source.class_names[i] for i in range(old_count) if i not in kept]
    log.info(
        "%s (%s): the pixels of %d other class(es) become %s; ignored pixels stay ignored",
        _summary(keep, old_count),
        source.description,
        len(merged),
        names[0 if background is None else kept.index(background)],
    )
    return dataclasses.replace(source, class_names=names, lookup=lookup)


def _classification(source: ImageSource, keep: Sequence[str]) -> ImageSource:
    if source.paths is None:
        raise DataError(f"{source.description}: data.keep_classes is not offered for TFDS classification splits")
    kept = kept_indices(keep, source.class_names, source.description)
    remap = np.full(len(source.class_names), -1, np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    labels = remap[source.labels]
    chosen = np.flatnonzero(labels >= 0)
    log.info(
        "%s (%s): %d image(s) of other classes dropped, %d kept",
        _summary(keep, len(source.class_names)),
        source.description,
        len(labels) - len(chosen),
        len(chosen),
    )
    return ImageSource(
        [source.class_names[i] for i in kept],
        labels[chosen],
        [source.paths[i] for i in chosen],
        description=source.description,
    )
