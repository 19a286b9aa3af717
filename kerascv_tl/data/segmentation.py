"""Semantic segmentation data: image + mask sources and the tf.data pipeline.

Masks are class-index maps: pixel value = class index, IGNORE_INDEX (255) = "not labelled", excluded
from the loss and from every metric. The model sees the whole image stretched to image_size x
image_size (`resize_image`); its logits are resized back to the original height and width
(`class_map_at`) for evaluation and in the exported SavedModel, so both score the same pixels.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from kerascv_tl.data.decode import decode_image, read_image_file
from kerascv_tl.data.epochs import epoch_seed
from kerascv_tl.data.detection import IMAGE_EXTENSIONS, _image_files, _image_size, split_source
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.problems import ProblemLog, skip_or_raise
from kerascv_tl.data.tolerant import map_skipping_errors

__all__ = [
    "IGNORE_INDEX",
    "MaskRecord",
    "SegmentationSource",
    "class_map_at",
    "mask_folder_source",
    "pennfudan_segmentation_source",
    "read_class_names",
    "read_mask",
    "resize_image",
    "segmentation_dataset",
    "segmentation_examples",
    "segmentation_source_from_config",
    "split_segmentation_source",
]

log = logging.getLogger(__name__)

IGNORE_INDEX = 255


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """[H, W, 3] (any dtype, values in [0, 255]) -> float32 [size, size, 3], bilinear with antialiasing.

    Graph ops only: shared by the evaluation pipeline and the exported SavedModel.
    """
    resized = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear", antialias=True)
    return tf.ensure_shape(tf.clip_by_value(resized, 0.0, 255.0), [size, size, 3])


def class_map_at(logits: tf.Tensor, height, width) -> tf.Tensor:
    """Logits [S, S, C] at model resolution -> int32 class map [height, width] (bilinear logits, argmax)."""
    resized = tf.image.resize(tf.cast(logits, tf.float32), tf.stack([height, width]), method="bilinear")
    return tf.argmax(resized, axis=-1, output_type=tf.int32)


# ==================================================================================================
# Sources: image + mask pairs
#
# Everything below reads files. Like the detection readers, every problem raises `DataError` naming the
# file; a pair that cannot be used (image without mask, mask without image, sizes that differ) is skipped,
# listed in `SegmentationSource.skipped` and summarised in one warning.

MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff")
CROP_AREA_RANGE = (0.25, 1.0)  # training: fraction of the image a random crop keeps
CROP_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)  # training: crop width / height
_CROP_ATTEMPTS = 10
_MASK_MODES = ("P", "L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I")  # single-channel class values
_MAX_CLASSES = IGNORE_INDEX  # class indices 0..254; 255 is "ignore"
_SKIPPED_SHOWN = 5
_CLASS_FILES = ("classes.yaml", "classes.json")


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
    tfds: object | None = None  # a `segmentation_tfds.TfdsMasks` instead of files (records then empty)

    def __len__(self) -> int:
        return self.tfds.count if self.tfds is not None else len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Sequence[int], description: str) -> "SegmentationSource":
        if self.tfds is not None:
            raise DataError(f"{self.description}: a TFDS split cannot be split again; set data.tfds_val_split "
                            "(or data.val) for validation")
        lookup = None if self.lookup is None else self.lookup.copy()
        return SegmentationSource([self.records[i] for i in indices], list(self.class_names), description, lookup)


# --------------------------------------------------------------------------------------------------
# Class names


def read_class_names(spec: str) -> tuple[list[str], dict[int, int] | None]:
    """`spec` is a path to a YAML/JSON file or a comma-separated list of names.

    File content: a list of names (index = raw value), or a mapping {raw_id: name}, or a mapping with a
    "classes" (or "names") key holding either. Returns (names in raw-id order, raw_id -> contiguous index
    map, or None when the ids are already 0..N-1).
    """
    spec = os.fspath(spec)
    path = Path(spec)
    looks_like_path = path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in spec or os.sep in spec
    if path.is_file():
        raw, where = _load_names_file(path), str(path)
    elif looks_like_path:
        raise DataError(f"{path}: class-names file not found", path=path)
    else:
        raw, where = [name.strip() for name in spec.split(",")], "class names"
        if any(not name for name in raw):
            raise DataError(f"{where} {spec!r}: empty name in the comma-separated list")
    if isinstance(raw, dict) and not _is_id_mapping(raw):
        for key in ("classes", "names"):
            if key in raw:
                raw = raw[key]
                break
        else:
            raise DataError(f"{where}: expected a list of class names, an {{id: name}} mapping, or a 'classes:' "
                            f"(or 'names:') entry holding one; got keys {list(raw)[:8]}", path=where)
    return _names_and_ids(raw, where)


def _load_names_file(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the class-names file ({e})", path=path) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})", path=path) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})", path=path) from None


def _as_id(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    return None


def _is_id_mapping(raw: dict) -> bool:
    return bool(raw) and all(_as_id(k) is not None for k in raw)


def _names_and_ids(raw, where: str) -> tuple[list[str], dict[int, int] | None]:
    if isinstance(raw, (list, tuple)):
        pairs = list(enumerate(raw))
    elif isinstance(raw, dict):
        if not _is_id_mapping(raw):
            raise DataError(f"{where}: class mapping keys must be integer mask values, got {list(raw)[:8]}",
                            path=where)
        pairs = sorted((_as_id(k), v) for k, v in raw.items())
    else:
        raise DataError(f"{where}: class names must be a list or an {{id: name}} mapping, got {type(raw).__name__}",
                        path=where)
    if not pairs:
        raise DataError(f"{where}: no class names", path=where)
    ids = [i for i, _ in pairs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: duplicate class ids {sorted({i for i in ids if ids.count(i) > 1})}", path=where)
    if ids[0] < 0:
        raise DataError(f"{where}: class ids must be >= 0, got {ids[0]}", path=where)
    names = []
    for raw_id, name in pairs:
        if name is None or isinstance(name, (dict, list)) or not str(name).strip():
            raise DataError(f"{where}: class {raw_id} has no usable name ({name!r})", path=where)
        names.append(str(name).strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{where}: duplicate class names {duplicates}", path=where)
    if ids == list(range(len(ids))):
        return names, None
    return names, {raw_id: index for index, raw_id in enumerate(ids)}


def _class_table(names: list[str], id_map: dict[int, int] | None, ignore_value: int,
                 where: str) -> tuple[list[str], np.ndarray | None]:
    """Drops the class whose raw id is `ignore_value` and builds the lookup (None when it is the identity)."""
    raw_ids = list(range(len(names))) if id_map is None else sorted(id_map)
    kept = [(raw_id, name) for raw_id, name in zip(raw_ids, names) if raw_id != ignore_value]
    if not kept:
        raise DataError(f"{where}: no classes left once the ignore value {ignore_value} is left out", path=where)
    if len(kept) > _MAX_CLASSES:
        raise DataError(f"{where}: {len(kept)} classes; at most {_MAX_CLASSES} fit a uint8 mask next to the ignore "
                        f"index {IGNORE_INDEX}", path=where)
    class_names = [name for _, name in kept]
    kept_ids = [raw_id for raw_id, _ in kept]
    if kept_ids == list(range(len(kept))) and ignore_value >= len(kept):
        return class_names, None
    lookup = np.full(max(256, kept_ids[-1] + 1, ignore_value + 1), IGNORE_INDEX, np.uint8)
    lookup[kept_ids] = np.arange(len(kept), dtype=np.uint8)
    return class_names, lookup


# --------------------------------------------------------------------------------------------------
# Masks


def _check_mask_mode(path, mode: str) -> None:
    if mode not in _MASK_MODES:
        raise DataError(f"{path}: mask has PIL mode {mode!r}; masks must be single-channel class indices (8- or 16-bit "
                        f"greyscale) or palette PNGs, not colour images", path=path)


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


def _mask_header(path: Path) -> tuple[int, int]:
    """(width, height) of a mask from its header; DataError for unreadable or colour masks."""
    with _open_mask(path, "mask header") as image:
        return int(image.size[0]), int(image.size[1])


def read_mask(record_or_path: MaskRecord | str | os.PathLike, lookup: np.ndarray | None,
              num_classes: int) -> np.ndarray:
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
        raise DataError(f"{path}: mask is {values.shape[1]}x{values.shape[0]} (WxH) but its image {record.image} is "
                        f"{record.width}x{record.height}", path=path)
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


# --------------------------------------------------------------------------------------------------
# Readers


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
            clashes.extend((str(p), f"{len(paths)} files share the name {key!r} ({names}); rename all but one")
                           for p in paths)
    return files, clashes


def _find_classes_file(root: Path) -> Path | None:
    for candidate in [root / name for name in _CLASS_FILES] + [root.parent / "classes.yaml"]:
        if candidate.is_file():
            return candidate
    return None


def _warn_skipped(description: str, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{file}: {reason}" for file, reason in skipped[:_SKIPPED_SHOWN])
    more = f"; ... and {len(skipped) - _SKIPPED_SHOWN} more" if len(skipped) > _SKIPPED_SHOWN else ""
    log.warning("%s: skipped %d file(s): %s%s", description, len(skipped), shown, more)


def mask_folder_source(root: str | os.PathLike, classes: str | None = None, ignore_value: int = 255,
                       problems: ProblemLog | None = None) -> SegmentationSource:
    """`root/images/**` and `root/masks/**`, paired by relative path without suffix.

    images/train2017/x.jpg pairs with masks/train2017/x.png; flat folders work the same. `classes` is a
    read_class_names spec; when None, root/classes.yaml, root/classes.json, then root/../classes.yaml are
    tried. A raw mask value equal to `ignore_value`, and any raw value not in the class list, becomes
    IGNORE_INDEX (the class named by `ignore_value`, if any, is not a class). Images without a mask,
    masks without an image and masks whose size differs from the upright image size are skipped (listed in
    `skipped`, summarised in a warning); colour masks raise DataError. DataError if no pairs remain. With
    `problems`, every skipped pair and every unreadable or colour mask is reported there instead.
    """
    root = Path(root)
    ignore_value = int(ignore_value)
    if ignore_value < 0:
        raise DataError(f"{root}: ignore value must be >= 0, got {ignore_value}", path=root)
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (segmentation folders need images/ and masks/ with the same "
                            f"relative file names)", path=folder)
    if classes is None:
        found = _find_classes_file(root)
        if found is None:
            raise DataError(f"{root}: no classes.yaml or classes.json here or in {root.parent}; set data.classes to a "
                            f"class-names YAML/JSON file or a comma-separated list of names", path=root)
        classes = str(found)
    names, id_map = read_class_names(classes)
    class_names, lookup = _class_table(names, id_map, ignore_value, str(classes))

    images, skipped = _files_by_key(images_dir, IMAGE_EXTENSIONS)
    masks, mask_clashes = _files_by_key(masks_dir, MASK_EXTENSIONS)
    skipped += mask_clashes
    records = []
    for key in sorted(set(images) | set(masks)):
        image, mask = images.get(key), masks.get(key)
        if mask is None:
            skipped.append((str(image), f"no mask named {key}.* ({', '.join(MASK_EXTENSIONS)}) in {masks_dir}"))
            continue
        if image is None:
            skipped.append((str(mask), f"no image named {key}.* in {images_dir} for this mask"))
            continue
        try:
            width, height = _image_size(image)
            mask_width, mask_height = _mask_header(mask)
        except DataError as error:
            skip_or_raise(problems, error, "pair skipped")
            continue
        if (mask_width, mask_height) != (width, height):
            skipped.append((str(mask), f"mask {mask} is {mask_width}x{mask_height} but image {image} is "
                                       f"{width}x{height} (upright)"))
            continue
        records.append(MaskRecord(str(image), str(mask), width, height))
    description = str(root)
    if problems is None:
        _warn_skipped(description, skipped)
    else:
        for file, reason in skipped:
            problems.add(file, reason, "pair skipped")
    if not records:
        raise DataError(f"{root}: no image/mask pairs (images/ and masks/ pair files by relative path without suffix; "
                        f"{len(skipped)} file(s) skipped)", path=root)
    return SegmentationSource(records, class_names, description, lookup, skipped)


def pennfudan_segmentation_source(root: str | os.PathLike, problems: ProblemLog | None = None) -> SegmentationSource:
    """Penn-Fudan: root/PNGImages/*.png with root/PedMasks/<stem>_mask.png, classes background and person.

    The instance masks (0 background, k pedestrian k) become semantic through the lookup (0 -> 0, any other
    value -> 1). Records follow sorted PNGImages, as `detection.pennfudan_source`, so the same seeded split
    holds out the same images in both tasks. A missing mask or one of the wrong size is a DataError (with
    `problems`, reported there and the pair left out).
    """
    root = Path(root)
    images_dir, masks_dir = root / "PNGImages", root / "PedMasks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (Penn-Fudan needs PNGImages/ and PedMasks/)", path=folder)
    files = _image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images", path=images_dir)
    records = []
    for image in files:
        try:
            records.append(_pennfudan_pair(image, masks_dir / f"{image.stem}_mask.png"))
        except DataError as error:
            skip_or_raise(problems, error, "pair skipped")
    lookup = np.ones(256, np.uint8)
    lookup[0] = 0
    return SegmentationSource(records, ["background", "person"], f"{root} (Penn-Fudan masks)", lookup)


def _pennfudan_pair(image: Path, mask: Path) -> MaskRecord:
    if not mask.is_file():
        raise DataError(f"{mask}: mask file not found (for {image})", path=mask)
    width, height = _image_size(image)
    mask_size = _mask_header(mask)
    if mask_size != (width, height):
        raise DataError(f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but image {image} is {width}x{height}",
                        path=mask)
    return MaskRecord(str(image), str(mask), width, height)


def split_segmentation_source(source: SegmentationSource, val_count: int,
                              seed: int) -> tuple[SegmentationSource, SegmentationSource]:
    """Seeded split into (train, val) with `val_count` validation pairs; the rule of `detection.split_source`
    (it is that function), so both tasks hold out the same images of the same list for the same seed."""
    return split_source(source, val_count, seed)  # only uses len(), .description and .subset()


def _read_segmentation_source(spec: str, data_config, tfds_split: str | None = None,
                              problems: ProblemLog | None = None) -> SegmentationSource:
    fmt = getattr(data_config, "format", "auto")
    if spec.startswith("tfds:") or fmt == "tfds":
        from kerascv_tl.data.segmentation_tfds import tfds_segmentation_source

        name, _, split = spec.removeprefix("tfds:").partition(":")
        return tfds_segmentation_source(name, split or tfds_split or data_config.tfds_train_split,
                                        data_config.tfds_data_dir, getattr(data_config, "classes", None),
                                        int(getattr(data_config, "ignore_index", 255)))
    if fmt == "pennfudan":
        return pennfudan_segmentation_source(spec, problems)
    if fmt in ("auto", "folder", "masks"):
        return mask_folder_source(spec, getattr(data_config, "classes", None),
                                  int(getattr(data_config, "ignore_index", 255)), problems)
    raise DataError(f"{spec}: set data.format to masks (images/ + masks/ folders) or pennfudan for segmentation "
                    f"(got {fmt!r})", path=spec)


def segmentation_source_from_config(data_config, seed: int,
                                    problems: ProblemLog | None = None) -> tuple[SegmentationSource, SegmentationSource]:
    """(train, val) from a DataConfig: `val` given (same class names required), or a seeded split of `train`
    holding out round(len * val_fraction) pairs. With `problems`, bad pairs are reported there."""
    if not data_config.train:
        raise DataError("data.train is empty: give a folder with images/ and masks/ (or the Penn-Fudan folder)")
    train = _read_segmentation_source(data_config.train, data_config, problems=problems)
    if not data_config.val and train.tfds is not None:
        dataset = ":".join(data_config.train.split(":")[:2])  # tfds:NAME[:SPLIT] -> tfds:NAME
        return train, _read_segmentation_source(dataset, data_config, data_config.tfds_val_split)
    if data_config.val:
        val = _read_segmentation_source(data_config.val, data_config, problems=problems)
        if list(val.class_names) != list(train.class_names):
            raise DataError(f"{data_config.val}: classes {val.class_names} differ from the training classes "
                            f"{train.class_names} ({data_config.train})", path=data_config.val)
        return train, val
    val_count = int(round(len(train) * data_config.val_fraction))
    return split_segmentation_source(train, val_count, seed)


# --------------------------------------------------------------------------------------------------
# tf.data


def _load_mask(path: bytes, image_path: bytes, height, width, lookup: np.ndarray | None,
               num_classes: int) -> np.ndarray:
    name, image_name = (os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in (path, image_path))
    return read_mask(MaskRecord(image_name, name, int(width), int(height)), lookup, num_classes)


def _resize_mask(mask: tf.Tensor, size: int) -> tf.Tensor:
    """[H, W] integer mask -> [size, size], nearest neighbour (no new values)."""
    resized = tf.image.resize(mask[..., tf.newaxis], [size, size], method="nearest")
    return tf.ensure_shape(resized[..., 0], [size, size])


def _random_crop_flip(image: tf.Tensor, mask: tf.Tensor, size: int, seed: tf.Tensor):
    """Joint scale-crop (area CROP_AREA_RANGE, aspect CROP_ASPECT_RANGE) + horizontal flip, seeded."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
        min_object_covered=0.0, aspect_ratio_range=CROP_ASPECT_RANGE, area_range=CROP_AREA_RANGE,
        max_attempts=_CROP_ATTEMPTS, use_image_if_no_bounding_boxes=True)
    image = resize_image(tf.slice(image, begin, extent), size)
    mask = _resize_mask(tf.slice(mask, begin[:2], extent[:2]), size)
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    return image, mask


def segmentation_dataset(source: SegmentationSource, image_size: int, batch_size: int, training: bool,
                         seed: int = 0, epoch: int = 0) -> tf.data.Dataset:
    """(images float32 [B, S, S, 3] in [0, 255], masks int32 [B, S, S]) with S = image_size.

    Images are decoded with `decode_image`, masks read with `read_mask` (through tf.numpy_function). A
    decoded image or mask whose size differs from the record's fails naming the file. Evaluation
    (`training=False`): source order, the image stretched with `resize_image`, the mask resized nearest.
    Training: the file list is shuffled with `epoch_seed(seed, epoch)`; each pair gets the same random
    crop (area 25-100% of the image, aspect 3/4-4/3), is resized to S x S (image bilinear, mask nearest)
    and flipped horizontally with probability 0.5, from stateless seeds (epoch seed, position in the epoch),
    so the same (seed, epoch) gives the same batches whatever came before (`data.epochs`). Masks only ever
    hold values of the original mask.
    """
    size = int(image_size)
    if training:
        seed = epoch_seed(seed, epoch)

    def transform(image, mask, random):
        if training:
            image, mask = _random_crop_flip(image, mask, size, tf.stack([tf.constant(seed, tf.int64), random]))
        else:
            image, mask = resize_image(image, size), _resize_mask(mask, size)
        return tf.ensure_shape(image, [size, size, 3]), tf.ensure_shape(tf.cast(mask, tf.int32), [size, size])

    if source.tfds is not None:
        ds = source.tfds.dataset(source.lookup, source.num_classes)
        if training:
            ds = ds.shuffle(1024, seed=seed, reshuffle_each_iteration=False)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
        ds = ds.map(lambda pair, random: transform(*pair, random), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
    if not source.records:
        raise DataError(f"{source.description}: no images")
    lookup = None if source.lookup is None else np.asarray(source.lookup, np.uint8)
    num_classes = source.num_classes
    ds = tf.data.Dataset.from_tensor_slices((  # bytes: a name that is not UTF-8 still opens
        [os.fsencode(r.image) for r in source.records],
        [os.fsencode(r.mask) for r in source.records],
        np.asarray([[r.height, r.width] for r in source.records], np.int32),
    ))
    if training:
        ds = ds.shuffle(len(source), seed=seed, reshuffle_each_iteration=False)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))

    def read(path, image_path, height, width):
        return _load_mask(path, image_path, height, width, lookup, num_classes)

    def load(element, random):
        image_path, mask_path, expected_size = element
        image = decode_image(tf.io.read_file(image_path))
        same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], expected_size))
        check = tf.debugging.Assert(same_size, ["decoded image size (H, W)", tf.shape(image)[:2],
                                                "differs from the header's (H, W)", expected_size, "for", image_path])
        with tf.control_dependencies([check]):  # the mask is read once the image is known to be right
            image = tf.identity(image)
            mask = tf.numpy_function(read, [mask_path, image_path, expected_size[0], expected_size[1]], tf.uint8,
                                     stateful=False)
        return transform(image, tf.ensure_shape(mask, [None, None]), random)

    # A pair that fails to load (or whose sizes disagree) is left out and named on stderr.
    ds = map_skipping_errors(ds, load, lambda element, random: tf.strings.join([element[0], " (mask ", element[1], ")"]))
    return ds.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def segmentation_examples(source: SegmentationSource) -> Iterator[tuple[MaskRecord, np.ndarray, np.ndarray]]:
    """For evaluation at the original resolution: (record, image uint8 [H, W, 3], mask uint8 [H, W]); a pair that
    cannot be read is left out with a warning naming it."""
    if source.tfds is not None:
        yield from source.tfds.examples(source.lookup, source.num_classes)
        return
    for record in source.records:
        try:
            image = read_image_file(record.image)
            if image.shape[:2] != (record.height, record.width):
                raise DataError(f"{record.image}: decoded image is {image.shape[1]}x{image.shape[0]} but its header "
                                f"says {record.width}x{record.height}", path=record.image)
            mask = read_mask(record, source.lookup, source.num_classes)
        except DataError as error:  # changed or broken since the data check: leave it out, say which
            log.warning("skipped in evaluation: %s", error)
            continue
        yield record, image, mask
