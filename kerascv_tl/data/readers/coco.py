"""COCO "instances" JSON -> `DetectionSource`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from kerascv_tl.data.boxes import empty_boxes, xywh_to_xyxy
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import image_size, require_file
from kerascv_tl.data.paths import resolve_within
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.base import cleaned_record, collect, detection_source
from kerascv_tl.data.records import DetectionRecord, DetectionSource

__all__ = ["coco_source"]


def coco_source(
    annotations_json: str | os.PathLike, image_root: str | os.PathLike | None = None, problems: ProblemLog | None = None
) -> DetectionSource:
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
    data = _load_instances(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    label_of, class_names = _categories(data["categories"], json_path)
    images = _image_entries(data["images"], root, json_path, problems)
    per_image, bad_images = _annotations(data["annotations"], json_path, images, label_of, problems)

    def read(image_id: int) -> tuple[DetectionRecord, int]:
        entry = images[image_id]
        path = entry["path"]
        require_file(path, "image file", referenced_by=str(json_path))
        width, height = entry.get("width"), entry.get("height")
        try:
            width, height = int(width), int(height)
        except (TypeError, ValueError):
            width, height = 0, 0
        if width <= 0 or height <= 0:
            width, height = image_size(path)
        raw_boxes, labels = per_image[image_id]
        boxes = xywh_to_xyxy(np.asarray(raw_boxes, np.float32)) if raw_boxes else empty_boxes()
        return cleaned_record(path, boxes, labels, width, height, f" (annotations in {json_path})", problems)

    usable = [image_id for image_id in images if image_id not in bad_images]
    return detection_source(collect(usable, read, problems, "image skipped"), class_names, str(json_path), problems)


def _load_instances(json_path: Path) -> dict:
    """The JSON object, with list-valued 'images', 'annotations' and 'categories'; DataError otherwise."""
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
    return data


def _categories(categories: list, json_path: Path) -> tuple[dict[int, int], list[str]]:
    """(category id -> label in ascending id order, class names in that order)."""

    def bad(message: str) -> DataError:
        return DataError(f"{json_path}: {message}", path=json_path)

    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in categories)
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"a category lacks an integer 'id' or a 'name' ({e!r})") from None
    ids = [cid for cid, _ in pairs]
    if len(set(ids)) != len(ids):
        raise bad(f"duplicate category ids {sorted({i for i in ids if ids.count(i) > 1})}")
    if not pairs:
        raise bad("'categories' is empty")
    return {cid: index for index, (cid, _) in enumerate(pairs)}, [name for _, name in pairs]


def _image_entries(entries: list, root: Path, json_path: Path, problems: ProblemLog | None) -> dict[int, dict]:
    """Image id -> its entry plus "path", in file order; bad, repeated or escaping entries reported or raised."""
    images: dict[int, dict] = {}
    first_with_name: dict[str, int] = {}
    read = collect(
        entries,
        lambda entry: (_image_entry(entry, root, json_path, images, first_with_name), entry),
        problems,
        "image skipped",
    )
    for (image_id, path), entry in read:
        images[image_id] = {**entry, "path": path}
    return images


def _image_entry(entry, root: Path, json_path: Path, images: dict, first_with_name: dict) -> tuple[int, Path]:
    """(id, image path) of one 'images' entry; DataError for a bad, repeated or escaping entry."""
    try:
        image_id = int(entry["id"])
        file_name = str(entry["file_name"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"{json_path}: an image entry lacks an integer 'id' or a 'file_name' ({e!r})", path=json_path
        ) from None
    if image_id in images:
        raise DataError(f"{json_path}: duplicate image id {image_id}", path=json_path)
    path = resolve_within(file_name, root, f"file_name of image {image_id} in {json_path}")
    if str(path) in first_with_name:
        raise DataError(
            f"{path}: listed again as image {image_id} in {json_path} (first as image "
            f"{first_with_name[str(path)]}); only the first is used",
            path=path,
        )
    first_with_name[str(path)] = image_id
    return image_id, root / file_name


def _annotations(
    annotations: list, json_path: Path, images: dict, label_of: dict, problems: ProblemLog | None
) -> tuple[dict[int, tuple[list, list]], set[int]]:
    """(image id -> ([x, y, w, h] boxes, labels), ids of the images a bad annotation refers to).

    A bad annotation of a known image leaves its image out ("image skipped"); one of an unknown image only
    itself ("annotation skipped")."""
    per_image: dict[int, tuple[list, list]] = {image_id: ([], []) for image_id in images}
    bad_images: set[int] = set()
    ids = list(label_of)

    def read(ann) -> tuple | None:
        try:
            return _annotation(ann, json_path, per_image, label_of, ids)
        except DataError:
            if _image_id(ann) in per_image:
                bad_images.add(_image_id(ann))
            raise

    def action(ann) -> str:
        return "image skipped" if _image_id(ann) in per_image else "annotation skipped"

    for box in collect(annotations, read, problems, action):
        if box is not None:
            per_image[box[0]][0].append(box[1])
            per_image[box[0]][1].append(box[2])
    return per_image, bad_images


def _image_id(ann) -> int | None:
    try:
        return int(ann.get("image_id"))
    except (AttributeError, TypeError, ValueError):
        return None


def _annotation(ann, json_path: Path, per_image: dict, label_of: dict, ids: list) -> tuple | None:
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
