"""The readers: one module per data format, and this door, which picks the reader `data.format` names.

* `read_classification_sources`, `read_detection_sources`, `read_segmentation_sources`: (train, val) from a
  `DataConfig` (val given, or a seeded split of train), for training and the data check.
* `classification_source_from_spec`, `detection_source_from_spec`, `segmentation_source_from_spec`: one
  source from one path (or `tfds:NAME`), for `kerascv-tl evaluate`.

The `read_*_sources` and the detection and segmentation `*_source_from_spec` restrict their sources to
`data.keep_classes` (`kerascv_tl.data.keep_classes`), so training, validation and evaluation data keep the same
classes; `classification_source_from_spec` takes no config, so its callers apply `keep_classes` themselves.

With a `ProblemLog`, every reader reports bad files, rows, boxes and pairs there and leaves them out
(`kerascv_tl.data.check`); without one it raises the `DataError` naming the first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import split_records, stratified_split
from kerascv_tl.data.keep_classes import keep_classes
from kerascv_tl.data.mask_records import SegmentationSource
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.class_names import read_class_names
from kerascv_tl.data.readers.coco import coco_source
from kerascv_tl.data.readers.folders_csv import csv_source, folder_source
from kerascv_tl.data.readers.masks import class_table, map_mask_values, mask_folder_source, read_mask
from kerascv_tl.data.readers.pennfudan import pennfudan_segmentation_source, pennfudan_source
from kerascv_tl.data.readers.tfds import prepared_tfds_builder, tfds_segmentation_source, tfds_source
from kerascv_tl.data.readers.voc import voc_source
from kerascv_tl.data.readers.yolo import yolo_source
from kerascv_tl.data.records import DetectionSource, ImageSource

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig

__all__ = [
    "class_table",
    "classification_source_from_spec",
    "coco_source",
    "csv_source",
    "detection_source_from_spec",
    "folder_source",
    "map_mask_values",
    "mask_folder_source",
    "pennfudan_segmentation_source",
    "pennfudan_source",
    "prepared_tfds_builder",
    "read_class_names",
    "read_classification_sources",
    "read_detection_sources",
    "read_mask",
    "read_segmentation_sources",
    "segmentation_source_from_spec",
    "tfds_segmentation_source",
    "tfds_source",
    "voc_source",
    "yolo_source",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Classification


def classification_source_from_spec(
    spec: str,
    fmt: str = "auto",
    class_names=None,
    tfds_data_dir=None,
    tfds_split="train",
    problems: ProblemLog | None = None,
    root: str | None = None,
) -> ImageSource:
    """`tfds:NAME` (or `fmt` tfds), a CSV file (or `fmt` csv) or a class-per-folder tree -> source."""
    if fmt == "tfds" or spec.startswith("tfds:"):
        return tfds_source(spec.removeprefix("tfds:"), tfds_split, tfds_data_dir)
    if fmt == "csv" or (fmt == "auto" and spec.lower().endswith(".csv")):
        return csv_source(spec, class_names, problems, root)
    if fmt in ("auto", "folder"):
        return folder_source(spec, class_names, problems)
    raise DataError(f"data.format {fmt!r} is not a classification format (folder, csv, tfds)")


def read_classification_sources(
    data_config: DataConfig, seed: int, problems: ProblemLog | None = None
) -> tuple[ImageSource, ImageSource]:
    """(train, val) from a `DataConfig`: val given, or a seeded stratified split of train. With `problems`,
    bad rows and empty class folders are reported there and left out (see `kerascv_tl.data.check`)."""
    if not data_config.train:
        raise DataError("data.train is empty: give a class-per-folder tree, a CSV file or tfds:NAME")
    kwargs = {
        "fmt": data_config.format,
        "tfds_data_dir": data_config.tfds_data_dir,
        "problems": problems,
        "root": getattr(data_config, "root", None),
    }
    keep = getattr(data_config, "keep_classes", None)
    train = classification_source_from_spec(data_config.train, tfds_split=data_config.tfds_train_split, **kwargs)
    if data_config.val:
        val = classification_source_from_spec(
            data_config.val, class_names=train.class_names, tfds_split=data_config.tfds_val_split, **kwargs
        )
        return keep_classes(train, keep), keep_classes(val, keep)
    if train.tfds_name is not None:
        val = tfds_source(train.tfds_name, data_config.tfds_val_split, data_config.tfds_data_dir)
        return keep_classes(train, keep), keep_classes(val, keep)
    return stratified_split(keep_classes(train, keep), data_config.val_fraction, seed)


# --------------------------------------------------------------------------------------------------
# Detection


def detection_source_from_spec(
    spec: str,
    data_config: DataConfig,
    class_names=None,
    image_root: str | None = None,
    problems: ProblemLog | None = None,
) -> DetectionSource:
    """The reader `data.format` names (a `.json` file means COCO under `auto`), for `spec`."""
    fmt = data_config.format
    keep = getattr(data_config, "keep_classes", None)
    if fmt == "coco" or (fmt == "auto" and spec.lower().endswith(".json")):
        source = coco_source(spec, image_root or data_config.image_root, problems)
    elif fmt == "voc" and keep is not None and class_names is not None:
        # VOC names its classes by the objects it holds: the training classes (already the kept ones) would make
        # every other object an error, so read them all, adding kept classes this data happens to lack.
        source = voc_source(spec, None, problems)
        found = {name.casefold() for name in source.class_names}
        source.class_names += [name for name in class_names if name.casefold() not in found]
    elif fmt == "voc":
        source = voc_source(spec, class_names, problems)
    elif fmt == "yolo":
        if not data_config.classes:
            raise DataError(f"{spec}: YOLO data needs data.classes (a names YAML)")
        source = yolo_source(spec, data_config.classes, problems)
    elif fmt == "pennfudan":
        source = pennfudan_source(spec, problems=problems)
    else:
        raise DataError(f"{spec}: set data.format to coco, voc, yolo or pennfudan for detection (got {fmt!r})")
    source = keep_classes(source, keep)
    if class_names is not None and list(source.class_names) != list(class_names):
        raise DataError(f"{spec}: classes {source.class_names} differ from the training classes {class_names}")
    return source


def read_detection_sources(
    data_config: DataConfig, seed: int, problems: ProblemLog | None = None
) -> tuple[DetectionSource, DetectionSource]:
    """(train, val) from a DataConfig: `val` given, or a seeded split holding out round(len * val_fraction)."""
    train = detection_source_from_spec(data_config.train, data_config, problems=problems)
    if data_config.val:
        val = detection_source_from_spec(
            data_config.val, data_config, train.class_names, data_config.val_image_root, problems
        )
    else:
        val_count = int(round(len(train.records) * data_config.val_fraction))
        train, val = split_records(train, val_count, seed)
    for name, source in (("train", train), ("val", val)):
        if source.dropped_boxes and problems is None:
            log.warning(
                "%s: dropped %d degenerate box(es) (zero area or outside the image) in %s",
                name,
                source.dropped_boxes,
                source.description,
            )
    return train, val


# --------------------------------------------------------------------------------------------------
# Segmentation


def segmentation_source_from_spec(
    spec: str, data_config: DataConfig, problems: ProblemLog | None = None, tfds_split: str | None = None
) -> SegmentationSource:
    """`tfds:NAME[:SPLIT]` (or `data.format` tfds), a Penn-Fudan folder (`pennfudan`) or a folder with images/
    and masks/ (`auto`, `folder`, `masks`) -> source. A TFDS spec without a split reads `tfds_split`, or else
    `data.tfds_train_split`."""
    source = _segmentation_source(spec, data_config, problems, tfds_split)
    return keep_classes(source, getattr(data_config, "keep_classes", None))


def _segmentation_source(
    spec: str, data_config: DataConfig, problems: ProblemLog | None, tfds_split: str | None
) -> SegmentationSource:
    fmt = getattr(data_config, "format", "auto")
    if spec.startswith("tfds:") or fmt == "tfds":
        name, _, split = spec.removeprefix("tfds:").partition(":")
        return tfds_segmentation_source(
            name,
            split or tfds_split or data_config.tfds_train_split,
            data_config.tfds_data_dir,
            getattr(data_config, "classes", None),
            int(getattr(data_config, "ignore_index", 255)),
        )
    if fmt == "pennfudan":
        return pennfudan_segmentation_source(spec, problems)
    if fmt in ("auto", "folder", "masks"):
        return mask_folder_source(
            spec, getattr(data_config, "classes", None), int(getattr(data_config, "ignore_index", 255)), problems
        )
    raise DataError(
        f"{spec}: set data.format to masks (images/ + masks/ folders) or pennfudan for segmentation (got {fmt!r})",
        path=spec,
    )


def read_segmentation_sources(
    data_config: DataConfig, seed: int, problems: ProblemLog | None = None
) -> tuple[SegmentationSource, SegmentationSource]:
    """(train, val) from a DataConfig: `val` given (same class names required), a TFDS split's
    `data.tfds_val_split`, or a seeded split of `train` holding out round(len * val_fraction) pairs (the rule
    of the detection split, so both tasks hold out the same images of the same list). With `problems`, bad
    pairs are reported there."""
    if not data_config.train:
        raise DataError("data.train is empty: give a folder with images/ and masks/ (or the Penn-Fudan folder)")
    train = segmentation_source_from_spec(data_config.train, data_config, problems=problems)
    if not data_config.val and train.tfds is not None:
        dataset = ":".join(data_config.train.split(":")[:2])  # tfds:NAME[:SPLIT] -> tfds:NAME
        return train, segmentation_source_from_spec(dataset, data_config, tfds_split=data_config.tfds_val_split)
    if data_config.val:
        val = segmentation_source_from_spec(data_config.val, data_config, problems=problems)
        if list(val.class_names) != list(train.class_names):
            raise DataError(
                f"{data_config.val}: classes {val.class_names} differ from the training classes "
                f"{train.class_names} ({data_config.train})",
                path=data_config.val,
            )
        return train, val
    val_count = int(round(len(train) * data_config.val_fraction))
    return split_records(train, val_count, seed)
