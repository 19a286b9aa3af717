"""Ultralytics YOLO layout (`images/<split>/` + `labels/<split>/*.txt`) -> `DetectionSource`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerascv_tl.data.boxes import empty_boxes
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import IMAGE_EXTENSIONS, image_files, image_size
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.base import cleaned_record, collect, detection_source
from kerascv_tl.data.records import DetectionRecord, DetectionSource

__all__ = ["yolo_names", "yolo_source"]

log = logging.getLogger(__name__)


def yolo_source(
    images_dir: str | os.PathLike, names: Sequence[str] | str | os.PathLike, problems: ProblemLog | None = None
) -> DetectionSource:
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
    class_names = yolo_names(names)
    labels_dir = _labels_dir(images_dir)
    files = image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})", path=images_dir)
    if not labels_dir.is_dir():
        log.warning("%s: labels folder not found; every image in %s has no boxes", labels_dir, images_dir)
    else:
        stems = {p.stem for p in files}
        orphans = sorted(p.name for p in labels_dir.glob("*.txt") if p.stem not in stems)
        if orphans:
            log.warning(
                "%s: %d label file(s) have no image in %s and are not used: %s",
                labels_dir,
                len(orphans),
                images_dir,
                ", ".join(orphans[:5]) + (" ..." if len(orphans) > 5 else ""),
            )

    def read(image_path: Path) -> tuple[DetectionRecord, int]:
        label_path = labels_dir / f"{image_path.stem}.txt"
        width, height = image_size(image_path)
        boxes, labels = _read_labels(label_path, len(class_names), width, height)
        return cleaned_record(image_path, boxes, labels, width, height, f" (labels in {label_path})", problems)

    return detection_source(collect(files, read, problems, "image skipped"), class_names, str(images_dir), problems)


def _labels_dir(images_dir: Path) -> Path:
    """`images_dir` with its last `images` component replaced by `labels`; DataError when it has none."""
    parts = images_dir.parts
    if "images" not in parts:  # e.g. "." inside an images folder
        parts = images_dir.resolve().parts
    if "images" not in parts:
        raise DataError(
            f"{images_dir}: no path component named 'images', so the sibling 'labels' folder cannot be "
            f"found (Ultralytics layout: .../images/<split>/ and .../labels/<split>/)",
            path=images_dir,
        )
    position = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:position], "labels", *parts[position + 1 :])


def yolo_names(names) -> list[str]:
    """Class names from a list, from the `names:` entry (list or {index: name}) of a YAML file, or from a
    `classes.txt` / `obj.names` file (one name per line, darknet's convention)."""
    if isinstance(names, (str, os.PathLike)) and Path(names).suffix.lower() in (".txt", ".names"):
        try:
            names = [line.strip() for line in Path(names).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as e:
            raise DataError(f"{names}: cannot read class names ({e.strerror or e})", path=names) from None
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
            raise DataError(
                f"{path}: no 'names:' entry (a list of class names or an {{index: name}} mapping)", path=path
            )
        raw, where = data["names"], str(path)
    else:
        raw, where = names, "names"
    if isinstance(raw, dict):
        try:
            mapping = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DataError(
                f"{where}: 'names' keys must be integer class indices, got {list(raw)[:5]}...", path=where
            ) from None
        if sorted(mapping) != list(range(len(mapping))):
            raise DataError(
                f"{where}: 'names' indices must be 0..{len(mapping) - 1}, got {sorted(mapping)}", path=where
            )
        result = [mapping[i] for i in range(len(mapping))]
    elif isinstance(raw, (list, tuple)):
        result = [str(v) for v in raw]
    else:
        raise DataError(
            f"{where}: 'names' must be a list or an {{index: name}} mapping, got {type(raw).__name__}", path=where
        )
    if not result:
        raise DataError(f"{where}: no class names", path=where)
    return result


def _read_labels(label_path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
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
        class_id, box = _label_line(label_path, line_number, line, fields, num_classes)
        boxes.append(np.asarray(box) * [width, height, width, height])
        labels.append(class_id)
    if not boxes:
        return empty_boxes(), np.zeros([0], np.int32)
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int32)


def _label_line(label_path: Path, line_number: int, line: str, fields: list[str], num_classes: int) -> tuple[int, list]:
    """(class, normalised xyxy box) of one label line; DataError naming the file and the line."""
    where = f"{label_path}: line {line_number} {line.strip()!r}"
    if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
        raise DataError(
            f"{where}: has {len(fields)} fields; expected 'class cx cy w h' (5) or a polygon "
            f"'class x1 y1 x2 y2 x3 y3 ...'",
            path=label_path,
        )
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
        return int(class_value), [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    xs, ys = coords[0::2], coords[1::2]
    return int(class_value), [xs.min(), ys.min(), xs.max(), ys.max()]
