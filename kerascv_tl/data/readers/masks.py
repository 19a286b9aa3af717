"""Segmentation masks: reading one mask (`read_mask`, `map_mask_values`), the class table, and the reader
of mask folders (`root/images/**` + `root/masks/**`).

Like the detection readers, every problem raises `DataError` naming the file; a pair that cannot be used
(image without mask, mask without image, sizes that differ) is skipped, listed in
`SegmentationSource.skipped` and summarised in one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import IMAGE_EXTENSIONS, image_size
from kerascv_tl.data.mask_records import IGNORE_INDEX, MaskRecord, SegmentationSource
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.base import collect
from kerascv_tl.data.readers.class_names import read_class_names

__all__ = ["MASK_EXTENSIONS", "class_table", "map_mask_values", "mask_folder_source", "mask_size", "read_mask"]

log = logging.getLogger(__name__)

MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff")
_MASK_MODES = ("P", "L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I")  # single-channel class values
_MAX_CLASSES = IGNORE_INDEX  # class indices 0..254; 255 is "ignore"
_SKIPPED_SHOWN = 5
_CLASS_FILES = ("classes.yaml", "classes.json")


def class_table(
    names: list[str], id_map: dict[int, int] | None, ignore_value: int, where: str
) -> tuple[list[str], np.ndarray | None]:
    """(class names, lookup) of `read_class_names`' result: drops the class whose raw id is `ignore_value` and
    builds the lookup raw value -> class index (None when it is the identity)."""
    raw_ids = list(range(len(names))) if id_map is None else sorted(id_map)
    kept = [(raw_id, name) for raw_id, name in zip(raw_ids, names) if raw_id != ignore_value]
    if not kept:
        raise DataError(f"{where}: no classes left once the ignore value {ignore_value} is left out", path=where)
    if len(kept) > _MAX_CLASSES:
        raise DataError(
            f"{where}: {len(kept)} classes; at most {_MAX_CLASSES} fit a uint8 mask next to the ignore "
            f"index {IGNORE_INDEX}",
            path=where,
        )
    class_names = [name for _, name in kept]
    kept_ids = [raw_id for raw_id, _ in kept]
    if kept_ids == list(range(len(kept))) and ignore_value >= len(kept):
        return class_names, None
    lookup = np.full(max(256, kept_ids[-1] + 1, ignore_value + 1), IGNORE_INDEX, np.uint8)
    lookup[kept_ids] = np.arange(len(kept), dtype=np.uint8)
    return class_names, lookup


def _check_mask_mode(path, mode: str) -> None:
    if mode not in _MASK_MODES:
        raise DataError(
            f"{path}: mask has PIL mode {mode!r}; masks must be single-channel class indices (8- or 16-bit "
            f"greyscale) or palette PNGs, not colour images",
            path=path,
        )


@contextlib.contextmanager
def _open_mask(path, what: str):
    """The mask as an open PIL image; DataError naming the file when it is missing, unreadable or in colour."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            _check_mask_mode(path, image.mode)
            yield image
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: cannot read the {what} ({e})", path=path) from None


def mask_size(path: Path) -> tuple[int, int]:
    """(width, height) of a mask from its header; DataError for unreadable or colour masks."""
    with _open_mask(path, "mask header") as image:
        return int(image.size[0]), int(image.size[1])


def read_mask(
    record_or_path: MaskRecord | str | os.PathLike, lookup: np.ndarray | None, num_classes: int
) -> np.ndarray:
    """uint8 [H, W] class-index mask.

    Palette ('P') PNGs give their palette indices; 'L', '1' and 16-bit ('I;16', 'I') masks give their
    values; colour (RGB/RGBA/...) masks raise DataError. Values go through `lookup` (values past its end
    become IGNORE_INDEX) or, when it is None, stay as they are with values >= num_classes becoming
    IGNORE_INDEX. Given a MaskRecord, a mask whose size differs from the record's raises DataError.
    """
    record = record_or_path if isinstance(record_or_path, MaskRecord) else None
    path = record.mask if record is not None else os.fspath(record_or_path)
    with _open_mask(path, "mask") as image:
        values = np.asarray(image)
    if values.ndim != 2:
        raise DataError(f"{path}: mask has shape {values.shape}; expected a single-channel [H, W] image", path=path)
    if record is not None and values.shape != (record.height, record.width):
        raise DataError(
            f"{path}: mask is {values.shape[1]}x{values.shape[0]} (WxH) but its image {record.image} is "
            f"{record.width}x{record.height}",
            path=path,
        )
    return map_mask_values(values, lookup, num_classes)


def map_mask_values(values: np.ndarray, lookup: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Raw mask values -> uint8 class indices through `lookup` (see SegmentationSource), IGNORE_INDEX else."""
    values = np.asarray(values).astype(np.int64)
    if lookup is None:
        valid = (values >= 0) & (values < num_classes)
        return np.where(valid, values, IGNORE_INDEX).astype(np.uint8)
    lookup = np.asarray(lookup, np.uint8)
    valid = (values >= 0) & (values < len(lookup))
    return np.where(valid, lookup[np.where(valid, values, 0)], IGNORE_INDEX).astype(np.uint8)


def _files_by_key(folder: Path, extensions: Sequence[str]) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Files under `folder` (recursive, hidden names left out) keyed by relative path without suffix."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() in extensions:
            found.setdefault(relative.with_suffix("").as_posix(), []).append(path)
    files, clashes = {}, []
    for key, paths in found.items():
        if len(paths) == 1:
            files[key] = paths[0]
        else:
            names = ", ".join(str(p) for p in paths)
            clashes.extend(
                (str(p), f"{len(paths)} files share the name {key!r} ({names}); rename all but one") for p in paths
            )
    return files, clashes


def _warn_skipped(description: str, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{file}: {reason}" for file, reason in skipped[:_SKIPPED_SHOWN])
    more = f"; ... and {len(skipped) - _SKIPPED_SHOWN} more" if len(skipped) > _SKIPPED_SHOWN else ""
    log.warning("%s: skipped %d file(s): %s%s", description, len(skipped), shown, more)


def mask_folder_source(
    root: str | os.PathLike, classes: str | None = None, ignore_value: int = 255, problems: ProblemLog | None = None
) -> SegmentationSource:
    """`root/images/**` and `root/masks/**`, paired by relative path without suffix.

    images/train2017/x.jpg pairs with masks/train2017/x.png; flat folders work the same. `classes` is a
    read_class_names spec; when None, root/classes.yaml, root/classes.json, then root/../classes.yaml are
    tried. A raw mask value equal to `ignore_value`, and any raw value not in the class list, becomes
    IGNORE_INDEX (the class named by `ignore_value`, if any, is not a class). Images without a mask,
    masks without an image and masks whose size differs from the upright image size are skipped (listed in
    `skipped`, summarised in a warning); colour masks raise DataError. DataError if no pairs remain. With
    `problems`, every skipped pair and every unreadable or colour mask is reported there instead.

    Long: pairing, class names and the skip report of one folder read in one pass.
    """
    root = Path(root)
    ignore_value = int(ignore_value)
    if ignore_value < 0:
        raise DataError(f"{root}: ignore value must be >= 0, got {ignore_value}", path=root)
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(
                f"{folder}: folder not found (segmentation folders need images/ and masks/ with the same "
                f"relative file names)",
                path=folder,
            )
    classes = _classes_spec(root) if classes is None else classes
    names, id_map = read_class_names(classes)
    class_names, lookup = class_table(names, id_map, ignore_value, str(classes))

    images, skipped = _files_by_key(images_dir, IMAGE_EXTENSIONS)
    masks, mask_clashes = _files_by_key(masks_dir, MASK_EXTENSIONS)
    skipped += mask_clashes

    def read(key: str) -> MaskRecord | None:
        """The pair's record, or None with the reason added to `skipped`."""
        image, mask = images.get(key), masks.get(key)
        if mask is None:
            skipped.append((str(image), f"no mask named {key}.* ({', '.join(MASK_EXTENSIONS)}) in {masks_dir}"))
            return None
        if image is None:
            skipped.append((str(mask), f"no image named {key}.* in {images_dir} for this mask"))
            return None
        width, height = image_size(image)
        mask_width, mask_height = mask_size(mask)
        if (mask_width, mask_height) != (width, height):
            skipped.append(
                (
                    str(mask),
                    f"mask {mask} is {mask_width}x{mask_height} but image {image} is {width}x{height} (upright)",
                )
            )
            return None
        return MaskRecord(str(image), str(mask), width, height)

    pairs = collect(sorted(set(images) | set(masks)), read, problems, "pair skipped")
    records = [record for record in pairs if record is not None]
    description = str(root)
    if problems is None:
        _warn_skipped(description, skipped)
    else:
        for file, reason in skipped:
            problems.add(file, reason, "pair skipped")
    if not records:
        raise DataError(
            f"{root}: no image/mask pairs (images/ and masks/ pair files by relative path without suffix; "
            f"{len(skipped)} file(s) skipped)",
            path=root,
        )
    return SegmentationSource(records, class_names, description, lookup, skipped)


def _classes_spec(root: Path) -> str:
    """The class-names file found for a mask folder: classes.yaml, classes.json, then ../classes.yaml."""
    for candidate in [root / name for name in _CLASS_FILES] + [root.parent / "classes.yaml"]:
        if candidate.is_file():
            return str(candidate)
    raise DataError(
        f"{root}: no classes.yaml or classes.json here or in {root.parent}; set data.classes to a "
        f"class-names YAML/JSON file or a comma-separated list of names",
        path=root,
    )
