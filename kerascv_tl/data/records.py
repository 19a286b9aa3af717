"""The in-memory sources the readers return, and the `Source` protocol the data check works with.

* `ImageSource` (classification): labelled image files, or a TFDS split.
* `DetectionSource`: `DetectionRecord`s, one per image with its boxes (see below), plus the class names.
* `SegmentationSource` (`kerascv_tl.data.mask_records`): image/mask pairs, or a TFDS split with masks.

Detection boxes are float32 [N, 4] in Keras' "xyxy" bounding-box format (as `keras.utils.bounding_boxes`
names it): absolute pixels `(x_min, y_min, x_max, y_max)` of the UPRIGHT image (after the JPEG EXIF
orientation that `kerascv_tl.data.decode.decode_image` applies), with x_max / y_max exclusive: a box over
pixel columns 3..5 is x_min=3, x_max=6. Labels are int32 [N], 0-based indices into `class_names`; `width`,
`height` are the upright image size in pixels.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

import numpy as np
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.tolerant import map_skipping_errors

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig
    from kerascv_tl.data.problems import ProblemLog

__all__ = ["DetectionRecord", "DetectionSource", "ImageSource", "Source"]

SourceT = TypeVar("SourceT", bound="Source")


class Source(Protocol):
    """What every task's source offers the data check (`kerascv_tl.data.check`) and the training code.

    `image_paths()` is None when nothing is on disk (a TFDS split: TFDS decodes it, there is no file to
    check); otherwise one path per example, in order. `expected_sizes()` gives, per image, the upright
    (width, height) its labels were made for (None: no size to compare), and `size_origin` says where that
    size came from, for the message. `check_contents` runs the task's own checks of its label files (e.g.
    mask values), reports what it finds in `problems` and returns how many files it opened. `without`
    returns the source without the examples at `bad` indices, keeping what the reader counted (dropped
    boxes, skipped pairs); the source itself when `bad` is empty.
    """

    class_names: list[str]
    description: str
    size_origin: ClassVar[str]

    def __len__(self) -> int: ...

    def image_paths(self) -> list[str] | None: ...

    def expected_sizes(self) -> list[tuple[int, int]] | None: ...

    def check_contents(self, problems: ProblemLog, data_config: DataConfig) -> int: ...

    def without(self: SourceT, bad: set[int]) -> SourceT: ...


# --------------------------------------------------------------------------------------------------
# Classification


@dataclass
class ImageSource:
    """Labelled images: files on disk (`paths`) or a TFDS split (`tfds_name`)."""

    class_names: list[str]
    labels: np.ndarray  # int32 [N]
    paths: list[str] | None = None
    tfds_name: str | None = None
    tfds_split: str | None = None
    tfds_data_dir: str | None = None
    description: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    size_origin: ClassVar[str] = ""  # no sizes to compare: class labels fit any image size

    def __len__(self) -> int:
        return int(len(self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: np.ndarray, description: str) -> ImageSource:
        if self.paths is None:
            raise ValueError("TFDS sources are split by TFDS split names, not subset")
        return ImageSource(
            self.class_names, self.labels[indices], [self.paths[i] for i in indices], description=description
        )

    def image_paths(self) -> list[str] | None:
        return self.paths

    def expected_sizes(self) -> None:
        return None

    def check_contents(self, problems: ProblemLog, data_config: DataConfig) -> int:
        return 0

    def without(self, bad: set[int]) -> ImageSource:
        if not bad:
            return self
        return self.subset(np.asarray([i for i in range(len(self)) if i not in bad], np.int64), self.description)

    def decoded(self, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """(uint8 [H, W, 3] image, int32 label) pairs; file lists are shuffled before decoding (cheap)."""
        if self.paths is not None:
            # Bytes, not str: a file name that is not UTF-8 still opens (check-data reports it all the same).
            paths = [os.fsencode(p) for p in self.paths]
            ds = tf.data.Dataset.from_tensor_slices((paths, self.labels.astype(np.int32)))
            if shuffle:
                ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=False)
            # A file that fails to decode here (it passed the data check) is left out and named on stderr.
            return map_skipping_errors(ds, _read_and_decode, lambda path, label: path)
        from kerascv_tl.data.readers.tfds import import_tfds  # the optional tfds extra, only for tfds: sources

        tfds = import_tfds(self.tfds_name)
        ds = tfds.load(
            self.tfds_name,
            split=self.tfds_split,
            data_dir=self.tfds_data_dir,
            as_supervised=True,
            download=False,
            shuffle_files=shuffle,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
        return ds.map(
            lambda image, label: (_to_rgb(image), tf.cast(label, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE
        )

    def fingerprint(self) -> str:
        """Changes when the file list, a file's size or modification time, or the labels change."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            if self.paths is not None:
                for path, label in zip(self.paths, self.labels):
                    stat = os.stat(path)
                    line = f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                    digest.update(line.encode("utf-8", "surrogateescape"))
            else:
                digest.update(f"tfds:{self.tfds_name}:{self.tfds_split}:{len(self)}".encode())
            digest.update("\0".join(self.class_names).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def _read_and_decode(path, label):
    return decode_image(tf.io.read_file(path)), label


def _to_rgb(image):
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return tf.cast(image[..., :3], tf.uint8)


# --------------------------------------------------------------------------------------------------
# Detection


@dataclass
class DetectionRecord:
    """One image and its boxes (xyxy pixels of the upright image, x_max/y_max exclusive)."""

    path: str
    boxes: np.ndarray  # float32 [N, 4]
    labels: np.ndarray  # int32 [N]
    width: int
    height: int

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int32).reshape(-1)
        if len(self.boxes) != len(self.labels):
            raise ValueError(f"{self.path}: {len(self.boxes)} boxes but {len(self.labels)} labels")


@dataclass
class DetectionSource:
    """Images with boxes, the class names (index = label) and how many boxes the reader dropped."""

    records: list[DetectionRecord]
    class_names: list[str]
    description: str = ""
    dropped_boxes: int = 0

    size_origin: ClassVar[str] = "the annotations say"

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(r.boxes) for r in self.records))

    def subset(self, indices: Sequence[int], description: str) -> DetectionSource:
        return DetectionSource([self.records[i] for i in indices], list(self.class_names), description, 0)

    def image_paths(self) -> list[str]:
        return [r.path for r in self.records]

    def expected_sizes(self) -> list[tuple[int, int]]:
        return [(r.width, r.height) for r in self.records]

    def check_contents(self, problems: ProblemLog, data_config: DataConfig) -> int:
        return 0  # the boxes were checked as they were read

    def without(self, bad: set[int]) -> DetectionSource:
        if not bad:
            return self
        kept = self.subset([i for i in range(len(self.records)) if i not in bad], self.description)
        kept.dropped_boxes = self.dropped_boxes  # what the reader counted, which a subset starts without
        return kept
