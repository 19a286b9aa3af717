"""Penn-Fudan pedestrians (`PNGImages/`, `Annotation/`, `PedMasks/`): boxes for detection, masks for
segmentation. Both follow sorted PNGImages, so the same seeded split holds out the same images in both tasks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import image_files, image_size, require_file
from kerascv_tl.data.mask_records import MaskRecord, SegmentationSource
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.base import cleaned_record, collect, detection_source
from kerascv_tl.data.readers.masks import mask_size
from kerascv_tl.data.records import DetectionRecord, DetectionSource

__all__ = ["pennfudan_segmentation_source", "pennfudan_source"]

_BOX = re.compile(
    r'Bounding box for object\s+(\d+)\s+"[^"]*"\s*\(Xmin,\s*Ymin\)\s*-\s*\(Xmax,\s*Ymax\)\s*:\s*'
    r"\(\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s*\)\s*-\s*\(\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s*\)"
)
_COUNT = re.compile(r"Objects with ground truth\s*:\s*(\d+)")


def pennfudan_source(
    root: str | os.PathLike, boxes_from: str = "annotations", problems: ProblemLog | None = None
) -> DetectionSource:
    """Penn-Fudan pedestrians: `root/PNGImages/*.png`, one class "person".

    `boxes_from="annotations"` reads `root/Annotation/<stem>.txt` (PASCAL v1.00 text; 1-based inclusive
    (Xmin, Ymin) - (Xmax, Ymax) becomes xyxy (Xmin - 1, Ymin - 1, Xmax, Ymax)). `boxes_from="masks"`
    takes the tight extent of pedestrian k's pixels in `root/PedMasks/<stem>_mask.png` (value k), with
    exclusive maxima.
    """
    if boxes_from not in ("annotations", "masks"):
        raise ValueError(f"boxes_from must be 'annotations' or 'masks', got {boxes_from!r}")
    root = Path(root)
    images_dir = root / "PNGImages"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: folder not found (Penn-Fudan needs PNGImages/)", path=images_dir)
    files = image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images", path=images_dir)

    def read(image_path: Path) -> tuple[DetectionRecord, int]:
        width, height = image_size(image_path)
        if boxes_from == "annotations":
            source_path = root / "Annotation" / f"{image_path.stem}.txt"
            boxes = _annotation_boxes(source_path, image_path)
        else:
            source_path = root / "PedMasks" / f"{image_path.stem}_mask.png"
            boxes = _mask_boxes(source_path, image_path, width, height)
        labels = np.zeros([len(boxes)], np.int32)
        return cleaned_record(image_path, boxes, labels, width, height, f" ({source_path})", problems)

    return detection_source(
        collect(files, read, problems, "image skipped"), ["person"], f"{root} (boxes from {boxes_from})", problems
    )


def _annotation_boxes(path: Path, image_path: Path) -> np.ndarray:
    require_file(path, "annotation file", referenced_by=str(image_path))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})", path=path) from None
    boxes = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("Bounding box"):
            continue
        match = _BOX.search(line)
        if match is None:
            raise DataError(
                f"{path}: line {line_number} {line.strip()!r} is not "
                f"'Bounding box for object K \"...\" (Xmin, Ymin) - (Xmax, Ymax) : (x, y) - (x, y)'",
                path=path,
            )
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in match.groups()[1:])
        except ValueError:
            raise DataError(f"{path}: line {line_number} has non-numeric coordinates", path=path) from None
        boxes[int(match.group(1))] = [xmin - 1.0, ymin - 1.0, xmax, ymax]
    count = _COUNT.search(text)
    if count is not None and int(count.group(1)) != len(boxes):
        raise DataError(f"{path}: says {count.group(1)} objects but has {len(boxes)} bounding boxes", path=path)
    return np.asarray([boxes[k] for k in sorted(boxes)], np.float32).reshape(-1, 4)


def _mask_boxes(path: Path, image_path: Path, width: int, height: int) -> np.ndarray:
    from PIL import Image

    require_file(path, "mask file", referenced_by=str(image_path))
    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    except OSError as e:
        raise DataError(f"{path}: cannot read the mask ({e})", path=path) from None
    if mask.ndim != 2 or mask.shape != (height, width):
        raise DataError(f"{path}: mask is {mask.shape}, expected a single-channel {height}x{width} image", path=path)
    boxes = []
    for k in np.unique(mask):
        if k == 0:
            continue
        ys, xs = np.nonzero(mask == k)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def pennfudan_segmentation_source(root: str | os.PathLike, problems: ProblemLog | None = None) -> SegmentationSource:
    """Penn-Fudan: root/PNGImages/*.png with root/PedMasks/<stem>_mask.png, classes background and person.

    The instance masks (0 background, k pedestrian k) become semantic through the lookup (0 -> 0, any other
    value -> 1). Records follow sorted PNGImages, as `pennfudan_source`, so the same seeded split holds out
    the same images in both tasks. A missing mask or one of the wrong size is a DataError (with `problems`,
    reported there and the pair left out).
    """
    root = Path(root)
    images_dir, masks_dir = root / "PNGImages", root / "PedMasks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (Penn-Fudan needs PNGImages/ and PedMasks/)", path=folder)
    files = image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images", path=images_dir)
    records = list(
        collect(files, lambda image: _pair(image, masks_dir / f"{image.stem}_mask.png"), problems, "pair skipped")
    )
    lookup = np.ones(256, np.uint8)
    lookup[0] = 0
    return SegmentationSource(records, ["background", "person"], f"{root} (Penn-Fudan masks)", lookup)


def _pair(image: Path, mask: Path) -> MaskRecord:
    if not mask.is_file():
        raise DataError(f"{mask}: mask file not found (for {image})", path=mask)
    width, height = image_size(image)
    size = mask_size(mask)
    if size != (width, height):
        raise DataError(f"{mask}: mask is {size[0]}x{size[1]} but image {image} is {width}x{height}", path=mask)
    return MaskRecord(str(image), str(mask), width, height)
