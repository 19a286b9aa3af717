"""Object-detection data: readers for COCO, Pascal VOC, YOLO and Penn-Fudan, and the tf.data pipeline.

The one in-memory format
------------------------
Every reader returns a `DetectionSource`: a list of `DetectionRecord`s plus the class names. A record
holds one image's path, its size and its boxes:

* `boxes`: float32 [N, 4] in Keras' "xyxy" bounding-box format (as `keras.utils.bounding_boxes` names
  it): absolute pixels `(x_min, y_min, x_max, y_max)` of the UPRIGHT image (after the JPEG EXIF
  orientation that `kerascv_tl.data.decode.decode_image` applies), with x_max / y_max exclusive: a box
  over pixel columns 3..5 is x_min=3, x_max=6.
* `labels`: int32 [N], 0-based index into `class_names`.
* `width`, `height`: the upright image size in pixels.

Box hygiene is the same in every reader: boxes are clipped to the image, and boxes with zero or
negative area after clipping are dropped, counted in `DetectionSource.dropped_boxes` and logged
(warning naming the file). Every problem with the files raises `DataError` naming the file.

The tf.data pipeline
--------------------
`detection_dataset` decodes with `decode_image`, letterboxes with `resize_with_pad` (scale the longer
side to `image_size`, pad bottom/right with 0), maps boxes into model-input pixels and pads each
batch to `max_boxes` boxes (boxes 0, labels -1: the padding KerasHub's RetinaNet label encoder
ignores). `resize_with_pad` is also the resize of the exported serving graph: boxes predicted in model
pixels map back to original pixels by dividing by the returned scale.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from kerascv_tl.data.boxes import BOX_FORMAT, clip_boxes, empty_boxes, valid_box_mask, xywh_to_xyxy
from kerascv_tl.data.augment import reseeder
from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.epochs import epoch_seed
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.paths import resolve_within
from kerascv_tl.data.problems import ProblemLog, skip_or_raise
from kerascv_tl.data.tolerant import map_skipping_errors

__all__ = [
    "BOX_FORMAT",
    "DetectionRecord",
    "DetectionSource",
    "LABEL_PADDING",
    "coco_source",
    "voc_source",
    "yolo_source",
    "pennfudan_source",
    "split_source",
    "detection_source_from_spec",
    "detection_sources_from_config",
    "resize_with_pad",
    "detection_dataset",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
LABEL_PADDING = -1  # label of a padding box in a batch (its box is all zeros)
SCALE_JITTER = (0.8, 1.2)  # training: random factor on the letterbox scale
BOX_SLACK = 1.0  # pixels a box may reach past the image edge (rounding) before a check reports it
MIN_TRAIN_BOX_SIDE = 1.0  # training: boxes narrower or shorter than this (model pixels) after augmentation go
_EXIF_ORIENTATION_TAG = 0x0112


# --------------------------------------------------------------------------------------------------
# The in-memory format


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

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(r.boxes) for r in self.records))

    def subset(self, indices: Sequence[int], description: str) -> "DetectionSource":
        return DetectionSource([self.records[i] for i in indices], list(self.class_names), description, 0)


# --------------------------------------------------------------------------------------------------
# Shared reader helpers


def _clean(path: str, boxes: np.ndarray, labels: np.ndarray, width: int, height: int, context: str = "",
           problems: ProblemLog | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Clips to the image and drops zero/negative-area boxes. Returns boxes, labels, dropped.

    Dropped boxes are logged, or with `problems` reported one by one, as are boxes reaching more than
    BOX_SLACK pixels outside the image (kept, clipped)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, np.int32).reshape(-1)
    if not np.isfinite(boxes).all():
        raise DataError(f"{path}: box coordinates are not finite numbers{context}", path=path)
    clipped = clip_boxes(boxes, width, height)
    keep = valid_box_mask(clipped)
    dropped = int((~keep).sum())
    if problems is not None:
        limits = np.array([0, 0, width, height], np.float32)
        overhang = np.maximum(np.maximum(-boxes[:, :2], 0).max(axis=1), np.maximum(boxes[:, 2:] - limits[2:], 0).max(axis=1))
        for box, kept, over in zip(boxes.tolist(), keep, overhang):
            box = [round(v, 1) for v in box]
            if not kept:
                problems.add(path, f"box {box} (xyxy) has no area inside the {width}x{height} image (zero or "
                                   f"negative size, or outside it){context}", "box dropped")
            elif over > BOX_SLACK:
                problems.add(path, f"box {box} (xyxy) reaches {over:.0f} px outside the {width}x{height} image"
                                   f"{context}", "box clipped to the image")
    elif dropped:
        log.warning("%s: dropped %d box(es) with no area inside the %dx%d image%s: %s", path, dropped, width,
                    height, context, boxes[~keep].tolist())
    return clipped[keep], labels[keep], dropped


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image from its header, without decoding the pixels.

    JPEG EXIF orientations 5..8 swap width and height, as `decode_image` turns those images upright; other
    formats are not re-oriented by `decode_image`, so their tag is ignored here too.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG":
                orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot read the image header ({e})", path=path) from None
    return int(width), int(height)


def _require_file(path: Path, what: str, referenced_by: str | None = None) -> None:
    if not path.is_file():
        source = f" (referenced by {referenced_by})" if referenced_by else ""
        raise DataError(f"{path}: {what} not found{source}", path=path)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _finish(records: list[DetectionRecord], class_names: list[str], description: str, dropped: int,
            problems: ProblemLog | None = None) -> DetectionSource:
    if dropped and problems is None:  # with a log, each box is reported there
        log.warning("%s: dropped %d degenerate box(es) in all", description, dropped)
    return DetectionSource(records, list(class_names), description, dropped)


# --------------------------------------------------------------------------------------------------
# COCO


def coco_source(annotations_json: str | os.PathLike, image_root: str | os.PathLike | None = None,
                problems: ProblemLog | None = None) -> DetectionSource:
    """A COCO "instances" JSON -> source.

    `bbox` [x, y, w, h] becomes xyxy. Category ids are remapped to contiguous labels 0..C-1 in ascending
    category-id order and `class_names` are the categories' names in that order. `iscrowd=1` annotations
    are skipped; images without annotations are kept with no boxes. Image files are
    `image_root/<file_name>`; `image_root` defaults to the folder holding the JSON file (no sibling
    `images/<split>` folder is guessed); a `file_name` that leads outside `image_root` is refused. Image
    sizes come from the JSON's `width`/`height` (read from the image header where missing).

    A structural fault (not JSON, a missing key, bad categories) is a DataError. So is a bad image entry or
    annotation, or a missing image file, unless `problems` is given: then it is reported there and the image
    it concerns is left out.
    """
    json_path = Path(annotations_json)
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{json_path}: COCO annotation file not found", path=json_path) from None
    except OSError as e:
        raise DataError(f"{json_path}: cannot read ({e.strerror or e})", path=json_path) from None
    except ValueError as e:
        raise DataError(f"{json_path}: not valid JSON ({e})", path=json_path) from None
    if not isinstance(data, dict):
        raise DataError(f"{json_path}: expected a COCO JSON object, got {type(data).__name__}", path=json_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            problem = "missing" if key not in data else f"not a list ({type(data[key]).__name__})"
            raise DataError(f"{json_path}: COCO instances JSON: '{key}' is {problem}", path=json_path)
    root = Path(image_root) if image_root is not None else json_path.parent

    def bad(message: str) -> DataError:
        return DataError(f"{json_path}: {message}", path=json_path)

    try:
        categories = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"a category lacks an integer 'id' or a 'name' ({e!r})") from None
    ids = [cid for cid, _ in categories]
    if len(set(ids)) != len(ids):
        raise bad(f"duplicate category ids {sorted({i for i in ids if ids.count(i) > 1})}")
    if not categories:
        raise bad("'categories' is empty")
    label_of = {cid: index for index, (cid, _) in enumerate(categories)}
    class_names = [name for _, name in categories]

    images: dict[int, dict] = {}
    order: list[int] = []
    first_with_name: dict[str, int] = {}
    for entry in data["images"]:
        try:
            image_id, path = _coco_image_entry(entry, root, json_path, images, first_with_name)
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
            continue
        images[image_id] = {**entry, "path": path}
        order.append(image_id)

    per_image: dict[int, tuple[list, list]] = {image_id: ([], []) for image_id in order}
    bad_images: set[int] = set()
    for ann in data["annotations"]:
        try:
            image_id = int(ann.get("image_id"))
        except (AttributeError, TypeError, ValueError):
            image_id = None
        try:
            box = _coco_annotation(ann, json_path, per_image, label_of, ids)
        except DataError as error:
            known = image_id in per_image
            skip_or_raise(problems, error, "image skipped" if known else "annotation skipped")
            if known:
                bad_images.add(image_id)
            continue
        if box is not None:
            per_image[box[0]][0].append(box[1])
            per_image[box[0]][1].append(box[2])

    records, dropped = [], 0
    for image_id in order:
        if image_id in bad_images:
            continue
        entry = images[image_id]
        path = entry["path"]
        try:
            _require_file(path, "image file", referenced_by=str(json_path))
            width, height = entry.get("width"), entry.get("height")
            try:
                width, height = int(width), int(height)
            except (TypeError, ValueError):
                width, height = 0, 0
            if width <= 0 or height <= 0:
                width, height = _image_size(path)
            raw_boxes, labels = per_image[image_id]
            boxes = xywh_to_xyxy(np.asarray(raw_boxes, np.float32)) if raw_boxes else empty_boxes()
            boxes, labels, n = _clean(str(path), boxes, labels, width, height, f" (annotations in {json_path})",
                                      problems)
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
            continue
        dropped += n
        records.append(DetectionRecord(str(path), boxes, labels, width, height))
    return _finish(records, class_names, str(json_path), dropped, problems)


def _coco_image_entry(entry, root: Path, json_path: Path, images: dict, first_with_name: dict) -> tuple[int, Path]:
    """(id, image path) of one 'images' entry; DataError for a bad, repeated or escaping entry."""
    try:
        image_id = int(entry["id"])
        file_name = str(entry["file_name"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{json_path}: an image entry lacks an integer 'id' or a 'file_name' ({e!r})",
                        path=json_path) from None
    if image_id in images:
        raise DataError(f"{json_path}: duplicate image id {image_id}", path=json_path)
    path = resolve_within(file_name, root, f"file_name of image {image_id} in {json_path}")
    if str(path) in first_with_name:
        raise DataError(f"{path}: listed again as image {image_id} in {json_path} (first as image "
                        f"{first_with_name[str(path)]}); only the first is used", path=path)
    first_with_name[str(path)] = image_id
    return image_id, root / file_name


def _coco_annotation(ann, json_path: Path, per_image: dict, label_of: dict, ids: list) -> tuple | None:
    """(image id, [x, y, w, h], label) of one annotation, None for a crowd one; DataError naming it."""
    def bad(message: str) -> DataError:
        return DataError(f"{json_path}: {message}", path=json_path)

    if not isinstance(ann, dict):
        raise bad(f"an annotation is not an object: {ann!r}")
    where = f"annotation {ann.get('id', '?')}"
    try:
        crowd = int(ann.get("iscrowd", 0) or 0)
    except (TypeError, ValueError):
        raise bad(f"{where} has iscrowd {ann.get('iscrowd')!r}; expected 0 or 1") from None
    if crowd:
        return None
    try:
        image_id = int(ann["image_id"])
        category_id = int(ann["category_id"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"{where} lacks an integer 'image_id' or 'category_id' ({e!r})") from None
    if image_id not in per_image:
        raise bad(f"{where} refers to image id {image_id}, which is not in 'images'")
    if category_id not in label_of:
        raise bad(f"{where} has category_id {category_id}, which is not in 'categories' {ids}")
    bbox = ann.get("bbox")
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise bad(f"{where} has bbox {bbox!r}; expected 4 finite numbers [x, y, width, height]")
    return image_id, values, label_of[category_id]


# --------------------------------------------------------------------------------------------------
# Pascal VOC


def voc_source(root: str | os.PathLike, class_names: Sequence[str] | None = None,
               problems: ProblemLog | None = None) -> DetectionSource:
    """Pascal VOC: `root/Annotations/*.xml`, each for the image `root/JPEGImages/<same stem>.jpg`.

    The XML files define the dataset (images without one are not used). VOC coordinates are 1-based
    inclusive pixels, so (xmin, ymin, xmax, ymax) becomes xyxy (xmin - 1, ymin - 1, xmax, ymax), as
    Detectron2 reads them. `difficult` objects are kept. Class names are the sorted distinct object names
    unless `class_names` is given (then an unknown name is an error). The image size is the XML's <size>,
    or the image header's where that is missing or zero. A bad XML file (or its missing image) is a
    DataError, or with `problems` reported there and left out.
    """
    root = Path(root)
    annotations_dir, images_dir = root / "Annotations", root / "JPEGImages"
    for folder in (annotations_dir, images_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (Pascal VOC needs Annotations/ and JPEGImages/)", path=folder)
    xml_files = sorted(p for p in annotations_dir.glob("*.xml") if not p.name.startswith("."))
    if not xml_files:
        raise DataError(f"{annotations_dir}: no .xml annotation files", path=annotations_dir)

    parsed = []  # (image path, width, height, [(name, box)], xml)
    for xml_path in xml_files:
        try:
            parsed.append(_voc_annotation(images_dir, xml_path))
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
    found = sorted({name for *_, objects, _ in parsed for name, _ in objects})
    names = list(class_names) if class_names is not None else found
    index_of = {name: i for i, name in enumerate(names)}
    records, dropped = [], 0
    for image_path, width, height, objects, xml_path in parsed:
        unknown = sorted({name for name, _ in objects} - set(index_of))
        boxes = np.asarray([box for _, box in objects], np.float32).reshape(-1, 4)
        try:
            if unknown:
                raise DataError(f"{xml_path}: object names {unknown} are not among the classes {names}", path=xml_path)
            labels = np.asarray([index_of[name] for name, _ in objects], np.int32)
            boxes, labels, n = _clean(str(image_path), boxes, labels, width, height, f" (annotations in {xml_path})",
                                      problems)
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
            continue
        dropped += n
        records.append(DetectionRecord(str(image_path), boxes, labels, width, height))
    return _finish(records, names, str(root), dropped, problems)


def _voc_annotation(images_dir: Path, xml_path: Path) -> tuple:
    """(image path, width, height, [(name, xyxy box)], xml path) of one VOC XML file; DataError naming it."""
    image_path = _voc_image(images_dir, xml_path)
    try:
        tree = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as e:
        raise DataError(f"{xml_path}: not a readable XML file ({e})", path=xml_path) from None
    width = _xml_int(tree, "size/width", xml_path)
    height = _xml_int(tree, "size/height", xml_path)
    if not width or not height:
        width, height = _image_size(image_path)
    objects = []
    for index, obj in enumerate(tree.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{xml_path}: object {index} has no <name>", path=xml_path)
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{xml_path}: object {index} ({name}) has no <bndbox>", path=xml_path)
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = box.findtext(tag)
            try:
                value = float((text or "").strip())
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataError(f"{xml_path}: object {index} ({name}) has <{tag}>{text}</{tag}>; expected a "
                                f"number", path=xml_path)
            coords.append(value)
        xmin, ymin, xmax, ymax = coords
        objects.append((name, [xmin - 1.0, ymin - 1.0, xmax, ymax]))
    return image_path, width, height, objects, xml_path


def _voc_image(images_dir: Path, xml_path: Path) -> Path:
    for extension in IMAGE_EXTENSIONS:
        stem = xml_path.stem
        for candidate in (images_dir / f"{stem}{extension}", images_dir / f"{stem}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{images_dir / (xml_path.stem + '.jpg')}: image file not found (annotated by {xml_path})",
                    path=xml_path)


def _xml_int(tree: ET.Element, tag: str, xml_path: Path) -> int:
    text = tree.findtext(tag)
    if text is None or not text.strip():
        return 0
    try:
        return int(float(text.strip()))
    except ValueError:
        raise DataError(f"{xml_path}: <{tag}> is {text!r}; expected a number", path=xml_path) from None


# --------------------------------------------------------------------------------------------------
# YOLO (Ultralytics layout)


def yolo_source(images_dir: str | os.PathLike, names: Sequence[str] | str | os.PathLike,
                problems: ProblemLog | None = None) -> DetectionSource:
    """Ultralytics YOLO layout: `.../images/<split>/x.jpg` with labels in `.../labels/<split>/x.txt`.

    The label file of an image is its path with the last path component `images` replaced by `labels` and
    the extension by `.txt`. Each line is `class cx cy w h` normalised to [0, 1] (a line with more values
    is a segment polygon `class x1 y1 x2 y2 ...`, whose extent becomes the box, as Ultralytics does). An
    image without a label file has no boxes. Image sizes are read from the image headers (no decode).
    `names` is a list of class names or the path of a YAML file whose `names:` is a list or an
    {index: name} mapping (Ultralytics' data YAML). A malformed label file is a DataError, or with `problems`
    reported there and its image left out.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found", path=images_dir)
    class_names = _yolo_names(names)
    parts = images_dir.parts
    if "images" not in parts:  # e.g. "." inside an images folder
        parts = images_dir.resolve().parts
    if "images" not in parts:
        raise DataError(f"{images_dir}: no path component named 'images', so the sibling 'labels' folder cannot be "
                        f"found (Ultralytics layout: .../images/<split>/ and .../labels/<split>/)", path=images_dir)
    position = len(parts) - 1 - parts[::-1].index("images")
    labels_dir = Path(*parts[:position], "labels", *parts[position + 1:])
    files = _image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})", path=images_dir)
    if not labels_dir.is_dir():
        log.warning("%s: labels folder not found; every image in %s has no boxes", labels_dir, images_dir)
    else:
        stems = {p.stem for p in files}
        orphans = sorted(p.name for p in labels_dir.glob("*.txt") if p.stem not in stems)
        if orphans:
            log.warning("%s: %d label file(s) have no image in %s and are not used: %s", labels_dir, len(orphans),
                        images_dir, ", ".join(orphans[:5]) + (" ..." if len(orphans) > 5 else ""))

    records, dropped = [], 0
    for image_path in files:
        label_path = labels_dir / f"{image_path.stem}.txt"
        try:
            width, height = _image_size(image_path)
            boxes, labels = _read_yolo_labels(label_path, len(class_names), width, height)
            boxes, labels, n = _clean(str(image_path), boxes, labels, width, height, f" (labels in {label_path})",
                                      problems)
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
            continue
        dropped += n
        records.append(DetectionRecord(str(image_path), boxes, labels, width, height))
    return _finish(records, class_names, str(images_dir), dropped, problems)


def _yolo_names(names) -> list[str]:
    if isinstance(names, (str, os.PathLike)):
        import yaml

        path = Path(names)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: class-names YAML not found", path=path) from None
        except (OSError, yaml.YAMLError) as e:
            raise DataError(f"{path}: cannot read YAML ({e})", path=path) from None
        if not isinstance(data, dict) or "names" not in data:
            raise DataError(f"{path}: no 'names:' entry (a list of class names or an {{index: name}} mapping)",
                            path=path)
        raw, where = data["names"], str(path)
    else:
        raw, where = names, "names"
    if isinstance(raw, dict):
        try:
            mapping = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'names' keys must be integer class indices, got {list(raw)[:5]}...",
                            path=where) from None
        if sorted(mapping) != list(range(len(mapping))):
            raise DataError(f"{where}: 'names' indices must be 0..{len(mapping) - 1}, got {sorted(mapping)}",
                            path=where)
        result = [mapping[i] for i in range(len(mapping))]
    elif isinstance(raw, (list, tuple)):
        result = [str(v) for v in raw]
    else:
        raise DataError(f"{where}: 'names' must be a list or an {{index: name}} mapping, got {type(raw).__name__}",
                        path=where)
    if not result:
        raise DataError(f"{where}: no class names", path=where)
    return result


def _read_yolo_labels(label_path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = label_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_boxes(), np.zeros([0], np.int32)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{label_path}: cannot read label file ({e})", path=label_path) from None
    boxes, labels = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_path}: line {line_number} {line.strip()!r}"
        if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
            raise DataError(f"{where}: has {len(fields)} fields; expected 'class cx cy w h' (5) or a polygon "
                            f"'class x1 y1 x2 y2 x3 y3 ...'", path=label_path)
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(f"{where}: not all fields are numbers", path=label_path) from None
        class_value, coords = values[0], np.asarray(values[1:], np.float64)
        if not (class_value.is_integer() and 0 <= class_value < num_classes):
            raise DataError(f"{where}: class {fields[0]} is not an integer in 0..{num_classes - 1}", path=label_path)
        if not np.isfinite(coords).all() or (coords < 0).any() or (coords > 1).any():
            raise DataError(f"{where}: coordinates must be normalised to [0, 1]", path=label_path)
        if len(coords) == 4:
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:
            xs, ys = coords[0::2], coords[1::2]
            box = [xs.min(), ys.min(), xs.max(), ys.max()]
        boxes.append(np.asarray(box) * [width, height, width, height])
        labels.append(int(class_value))
    if not boxes:
        return empty_boxes(), np.zeros([0], np.int32)
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int32)


# --------------------------------------------------------------------------------------------------
# Penn-Fudan pedestrians

_PENNFUDAN_BOX = re.compile(
    r'Bounding box for object\s+(\d+)\s+"[^"]*"\s*\(Xmin,\s*Ymin\)\s*-\s*\(Xmax,\s*Ymax\)\s*:\s*'
    r"\(\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s*\)\s*-\s*\(\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s*\)"
)
_PENNFUDAN_COUNT = re.compile(r"Objects with ground truth\s*:\s*(\d+)")


def pennfudan_source(root: str | os.PathLike, boxes_from: str = "annotations",
                     problems: ProblemLog | None = None) -> DetectionSource:
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
    files = _image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images", path=images_dir)
    records, dropped = [], 0
    for image_path in files:
        try:
            width, height = _image_size(image_path)
            if boxes_from == "annotations":
                source_path = root / "Annotation" / f"{image_path.stem}.txt"
                boxes = _pennfudan_annotation_boxes(source_path, image_path)
            else:
                source_path = root / "PedMasks" / f"{image_path.stem}_mask.png"
                boxes = _pennfudan_mask_boxes(source_path, image_path, width, height)
            labels = np.zeros([len(boxes)], np.int32)
            boxes, labels, n = _clean(str(image_path), boxes, labels, width, height, f" ({source_path})", problems)
        except DataError as error:
            skip_or_raise(problems, error, "image skipped")
            continue
        dropped += n
        records.append(DetectionRecord(str(image_path), boxes, labels, width, height))
    return _finish(records, ["person"], f"{root} (boxes from {boxes_from})", dropped, problems)


def _pennfudan_annotation_boxes(path: Path, image_path: Path) -> np.ndarray:
    _require_file(path, "annotation file", referenced_by=str(image_path))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})", path=path) from None
    boxes = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("Bounding box"):
            continue
        match = _PENNFUDAN_BOX.search(line)
        if match is None:
            raise DataError(f"{path}: line {line_number} {line.strip()!r} is not "
                            f"'Bounding box for object K \"...\" (Xmin, Ymin) - (Xmax, Ymax) : (x, y) - (x, y)'",
                            path=path)
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in match.groups()[1:])
        except ValueError:
            raise DataError(f"{path}: line {line_number} has non-numeric coordinates", path=path) from None
        boxes[int(match.group(1))] = [xmin - 1.0, ymin - 1.0, xmax, ymax]
    count = _PENNFUDAN_COUNT.search(text)
    if count is not None and int(count.group(1)) != len(boxes):
        raise DataError(f"{path}: says {count.group(1)} objects but has {len(boxes)} bounding boxes", path=path)
    return np.asarray([boxes[k] for k in sorted(boxes)], np.float32).reshape(-1, 4)


def _pennfudan_mask_boxes(path: Path, image_path: Path, width: int, height: int) -> np.ndarray:
    from PIL import Image

    _require_file(path, "mask file", referenced_by=str(image_path))
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


# --------------------------------------------------------------------------------------------------
# Splitting


def split_source(source: DetectionSource, val_count: int, seed: int) -> tuple[DetectionSource, DetectionSource]:
    """Seeded random split into (train, val) with `val_count` validation images; both keep source order."""
    total = len(source)
    if not 0 < val_count < total:
        raise DataError(f"{source.description}: cannot hold out {val_count} of {total} images for validation "
                        f"(need 0 < val_count < {total})")
    permutation = np.random.default_rng(seed).permutation(total)
    val_idx, train_idx = np.sort(permutation[:val_count]), np.sort(permutation[val_count:])
    train = source.subset(train_idx.tolist(), f"{source.description} (train split, seed {seed})")
    val = source.subset(val_idx.tolist(), f"{source.description} (val split, {val_count} images, seed {seed})")
    return train, val


def detection_source_from_spec(spec: str, data_config, class_names=None, image_root: str | None = None,
                               problems: ProblemLog | None = None) -> DetectionSource:
    """The reader `data.format` names (a `.json` file means COCO under `auto`), for `spec`."""
    fmt = data_config.format
    if fmt == "coco" or (fmt == "auto" and spec.lower().endswith(".json")):
        source = coco_source(spec, image_root or data_config.image_root, problems)
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
    if class_names is not None and list(source.class_names) != list(class_names):
        raise DataError(f"{spec}: classes {source.class_names} differ from the training classes {class_names}")
    return source


def detection_sources_from_config(data_config, seed: int,
                                  problems: ProblemLog | None = None) -> tuple[DetectionSource, DetectionSource]:
    """(train, val) from a DataConfig: `val` given, or a seeded split holding out round(len * val_fraction)."""
    train = detection_source_from_spec(data_config.train, data_config, problems=problems)
    if data_config.val:
        val = detection_source_from_spec(data_config.val, data_config, train.class_names, data_config.val_image_root,
                                         problems)
    else:
        val_count = int(round(len(train.records) * data_config.val_fraction))
        train, val = split_source(train, val_count, seed)
    for name, source in (("train", train), ("val", val)):
        if source.dropped_boxes and problems is None:
            log.warning("%s: dropped %d degenerate box(es) (zero area or outside the image) in %s",
                        name, source.dropped_boxes, source.description)
    return train, val


# --------------------------------------------------------------------------------------------------
# tf.data


def resize_with_pad(image: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """[H, W, C] image -> (float32 [size, size, C] in [0, 255], float32 scalar scale).

    scale = size / max(H, W); the image is resized (bilinear, antialiased) to round(H * scale) x
    round(W * scale) and padded bottom/right with 0. A point (x, y) of the original maps to
    (x * scale, y * scale) in the result, so model-pixel boxes map back by dividing by `scale`.
    Graph ops only: usable in tf.data and in an exported SavedModel.
    """
    with tf.name_scope("resize_with_pad"):
        image = tf.convert_to_tensor(image)
        shape = tf.shape(image)
        height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        scale = tf.cast(size, tf.float32) / tf.maximum(height, width)
        new_size = tf.clip_by_value(tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32), 1, size)
        resized = tf.image.resize(tf.cast(image, tf.float32), new_size, method="bilinear", antialias=True)
        padded = tf.image.pad_to_bounding_box(tf.clip_by_value(resized, 0.0, 255.0), 0, 0, size, size)
        channels = image.shape[-1] if image.shape.rank == 3 else None
        return tf.ensure_shape(padded, [size, size, channels]), scale


def _jittered_letterbox(image: tf.Tensor, size: int, seed: tf.Tensor):
    """Training variant of resize_with_pad: the scale times a random factor in SCALE_JITTER.

    Content larger than the canvas is cropped at a random offset; smaller content sits top-left over 0
    padding. Returns (image, scale, [offset_x, offset_y]).
    """
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    factor_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    factor = tf.random.stateless_uniform([], factor_seed, SCALE_JITTER[0], SCALE_JITTER[1])
    scale = tf.cast(size, tf.float32) / tf.maximum(height, width) * factor
    new_size = tf.maximum(tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32), 1)
    resized = tf.image.resize(tf.cast(image, tf.float32), new_size, method="bilinear", antialias=True)
    resized = tf.clip_by_value(resized, 0.0, 255.0)
    slack = tf.maximum(new_size - size, 0)  # [y, x]
    fraction = tf.random.stateless_uniform([2], offset_seed, 0.0, 1.0)
    offset = tf.cast(tf.floor(fraction * tf.cast(slack + 1, tf.float32)), tf.int32)
    offset = tf.minimum(offset, slack)
    cropped = resized[offset[0]:offset[0] + size, offset[1]:offset[1] + size]
    padded = tf.image.pad_to_bounding_box(cropped, 0, 0, size, size)
    return tf.ensure_shape(padded, [size, size, 3]), scale, tf.cast(tf.reverse(offset, [0]), tf.float32)


def _keep_boxes(boxes: tf.Tensor, labels: tf.Tensor, size: int, min_side: float):
    """Clips [N, 4] boxes to the canvas and removes those with a side < min_side (or <= 0)."""
    boxes = tf.clip_by_value(boxes, 0.0, float(size))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (widths > 0) & (heights > 0) & (widths >= min_side) & (heights >= min_side) & (labels >= 0)
    return tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)


def _compact_batch(boxes: tf.Tensor, labels: tf.Tensor, size: int, max_boxes: int, min_side: float):
    """[B, M, 4] / [B, M] after an augmentation: clip, drop degenerate boxes, re-pad to M at the end."""
    boxes = tf.clip_by_value(boxes, 0.0, float(size))
    widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    keep = (labels >= 0) & (widths > 0) & (heights > 0) & (widths >= min_side) & (heights >= min_side)
    boxes = tf.ragged.boolean_mask(boxes, keep).to_tensor(0.0, shape=[None, max_boxes, 4])
    labels = tf.ragged.boolean_mask(labels, keep).to_tensor(LABEL_PADDING, shape=[None, max_boxes])
    return boxes, labels


def detection_dataset(source: DetectionSource, image_size: int, batch_size: int, training: bool, seed: int = 0,
                      max_boxes: int = 100, epoch: int = 0) -> tf.data.Dataset:
    """(images float32 [B, S, S, 3] in [0, 255], {"boxes": float32 [B, M, 4], "labels": int32 [B, M]}).

    Boxes are xyxy in model-input pixels; each image's boxes come first, then padding up to
    M = `max_boxes` (boxes 0, labels -1); boxes beyond `max_boxes` are dropped (a warning says how many
    images have more). Evaluation (`training=False`): source order, `resize_with_pad`. Training: the file
    list is shuffled with `epoch_seed(seed, epoch)`, the letterbox scale is jittered by a factor in
    [0.8, 1.2] (content over the canvas is randomly cropped), images are flipped horizontally with
    `keras.layers.RandomFlip(bounding_box_format="xyxy")`, and afterwards boxes are clipped to the canvas
    and boxes with a side under 1 model pixel become padding. The same (seed, epoch) gives the same batches,
    whatever came before (`data.epochs`).
    """
    if training:
        seed = epoch_seed(seed, epoch)
    if not source.records:
        raise DataError(f"{source.description}: no images")
    size, max_boxes = int(image_size), int(max_boxes)
    over = sum(1 for r in source.records if len(r.boxes) > max_boxes)
    if over:
        log.warning("%s: %d image(s) have more than max_boxes=%d boxes; the extra boxes are not used",
                    source.description, over, max_boxes)
    counts = np.asarray([len(r.boxes) for r in source.records], np.int64)
    all_boxes = np.concatenate([r.boxes for r in source.records] + [empty_boxes()]).astype(np.float32)
    all_labels = np.concatenate([r.labels for r in source.records] + [np.zeros([0], np.int32)]).astype(np.int32)
    sizes = np.asarray([[r.height, r.width] for r in source.records], np.int32)
    ds = tf.data.Dataset.from_tensor_slices((
        [os.fsencode(r.path) for r in source.records],  # bytes: a name that is not UTF-8 still opens
        sizes,
        tf.RaggedTensor.from_row_lengths(all_boxes, counts),
        tf.RaggedTensor.from_row_lengths(all_labels, counts),
    ))
    if training:
        ds = ds.shuffle(len(source), seed=seed, reshuffle_each_iteration=False)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
    min_side = MIN_TRAIN_BOX_SIDE if training else 0.0

    def load(element, random):
        path, expected_size, boxes, labels = element
        if isinstance(boxes, tf.RaggedTensor):
            boxes, labels = boxes.to_tensor(), labels.to_tensor()
        boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        image = decode_image(tf.io.read_file(path))
        same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], expected_size))
        check = tf.debugging.Assert(same_size, ["decoded image size (H, W)", tf.shape(image)[:2],
                                                "differs from the annotations' (H, W)", expected_size, "for", path])
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        if training:
            pair = tf.stack([tf.constant(seed, tf.int64), random])
            image, scale, offset = _jittered_letterbox(image, size, pair)
            boxes = boxes * scale - tf.tile(offset, [2])[tf.newaxis]
        else:
            image, scale = resize_with_pad(image, size)
            boxes = boxes * scale
        boxes, labels = _keep_boxes(boxes, labels, size, min_side)
        return tf.ensure_shape(image, [size, size, 3]), {"boxes": boxes[:max_boxes], "labels": labels[:max_boxes]}

    # An image that fails to decode or has another size than its annotations say is left out and named.
    ds = map_skipping_errors(ds, load, lambda element, random: element[0])
    ds = ds.padded_batch(
        batch_size,
        padded_shapes=([size, size, 3], {"boxes": [max_boxes, 4], "labels": [max_boxes]}),
        padding_values=(0.0, {"boxes": 0.0, "labels": LABEL_PADDING}),
    )
    if training:
        import keras

        # Sequential map: the layer's seed generator is a variable, reseeded from the batch index so the
        # flips are the same for the same (seed, epoch) however often the dataset is iterated. RandomFlip
        # replaces the boxes entry of the dict it is given (with normalised boxes), so it gets a fresh dict;
        # padding boxes come back as (S, 0, S, 0).
        flip = keras.layers.RandomFlip("horizontal", bounding_box_format=BOX_FORMAT, seed=seed)
        reseed = reseeder([flip])

        def augment(images, targets, index):
            reseed(index)
            out = flip({"images": images,
                        "bounding_boxes": {"boxes": targets["boxes"], "labels": targets["labels"]}}, training=True)
            # RandomFlip hands the labels back as float32.
            labels = tf.cast(out["bounding_boxes"]["labels"], tf.int32)
            boxes, labels = _compact_batch(out["bounding_boxes"]["boxes"], labels, size, max_boxes, min_side)
            return tf.ensure_shape(out["images"], [None, size, size, 3]), {"boxes": boxes, "labels": labels}

        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(lambda batch, k: augment(*batch, k))
    return ds.prefetch(tf.data.AUTOTUNE)
