"""The in-memory segmentation source: image/mask pairs (or a TFDS split with masks) and the class table.

Masks are class-index maps: pixel value = class index, IGNORE_INDEX (255) = "not labelled", excluded from
the loss and from every metric. Only numpy and PIL are needed here (no TensorFlow), so the training and
evaluation code can import IGNORE_INDEX cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.image_check import mask_values

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig
    from kerascv_tl.data.problems import ProblemLog

__all__ = ["IGNORE_INDEX", "MaskRecord", "SegmentationSource"]

IGNORE_INDEX = 255
_VALUES_SHOWN = 10


@dataclass(frozen=True)
class MaskRecord:
    """One image and its mask. `width`, `height`: the upright image size (from the header)."""

    image: str
    mask: str
    width: int
    height: int


@dataclass
class SegmentationSource:
    """Image/mask pairs, the class names (index = class index in the remapped mask) and the mask lookup.

    `lookup` is a uint8 table raw mask value -> class index or IGNORE_INDEX (raw values past its end are
    IGNORE_INDEX); None means identity, with values >= num_classes becoming IGNORE_INDEX. `skipped` lists
    the (file, reason) pairs dropped when the source was read (a subset starts with none, as a
    `DetectionSource` subset starts with no dropped boxes).
    """

    records: list[MaskRecord]
    class_names: list[str]
    description: str = ""
    lookup: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tfds: object | None = None  # a `readers.tfds.TfdsMasks` instead of files (records then empty)

    size_origin: ClassVar[str] = "its mask (and header) say"

    def __len__(self) -> int:
        return self.tfds.count if self.tfds is not None else len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Sequence[int], description: str) -> SegmentationSource:
        if self.tfds is not None:
            raise DataError(
                f"{self.description}: a TFDS split cannot be split again; set data.tfds_val_split "
                "(or data.val) for validation"
            )
        lookup = None if self.lookup is None else self.lookup.copy()
        return SegmentationSource([self.records[i] for i in indices], list(self.class_names), description, lookup)

    def image_paths(self) -> list[str] | None:
        return None if self.tfds is not None else [r.image for r in self.records]

    def expected_sizes(self) -> list[tuple[int, int]] | None:
        return None if self.tfds is not None else [(r.width, r.height) for r in self.records]

    def check_contents(self, problems: ProblemLog, data_config: DataConfig) -> int:
        """Reports masks holding values that are neither a class nor the ignore value (training ignores
        them); returns the number of masks opened."""
        if self.tfds is not None:
            return 0
        ignore_value = int(getattr(data_config, "ignore_index", 255))
        if self.lookup is None:
            known = set(range(self.num_classes))
        else:
            known = {int(v) for v in np.flatnonzero(np.asarray(self.lookup) != 255)}
        known.add(ignore_value)
        for record in self.records:
            try:
                values = mask_values(record.mask)
            except (OSError, SyntaxError, ValueError) as e:
                problems.add(record.mask, f"cannot read the mask ({e})")
                continue
            unknown = sorted(int(v) for v in values if int(v) not in known)
            if unknown:
                shown = unknown[:_VALUES_SHOWN] + (["..."] if len(unknown) > _VALUES_SHOWN else [])
                problems.add(
                    record.mask,
                    f"mask values {shown} are not among the {self.num_classes} classes' ids "
                    f"nor the ignore value {ignore_value}",
                    "pixels ignored",
                )
        return len(self.records)

    def without(self, bad: set[int]) -> SegmentationSource:
        if not bad:
            return self
        kept = self.subset([i for i in range(len(self.records)) if i not in bad], self.description)
        kept.skipped = self.skipped  # what the reader counted, which a subset starts without
        return kept
