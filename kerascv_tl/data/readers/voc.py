"""Pascal VOC (`Annotations/*.xml` + `JPEGImages/`) -> `DetectionSource`."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import IMAGE_EXTENSIONS, image_size
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.readers.base import cleaned_record, collect, detection_source
from kerascv_tl.data.records import DetectionRecord, DetectionSource

__all__ = ["voc_source"]


def voc_source(
    root: str | os.PathLike, class_names: Sequence[str] | None = None, problems: ProblemLog | None = None
) -> DetectionSource:
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

    # (image path, width, height, [(name, box)], xml)
    parsed = list(collect(xml_files, lambda xml_path: _voc_annotation(images_dir, xml_path), problems, "image skipped"))
    found = sorted({name for *_, objects, _ in parsed for name, _ in objects})
    names = list(class_names) if class_names is not None else found
    index_of = {name: i for i, name in enumerate(names)}

    def read(annotation: tuple) -> tuple[DetectionRecord, int]:
        image_path, width, height, objects, xml_path = annotation
        unknown = sorted({name for name, _ in objects} - set(index_of))
        boxes = np.asarray([box for _, box in objects], np.float32).reshape(-1, 4)
        if unknown:
            raise DataError(f"{xml_path}: object names {unknown} are not among the classes {names}", path=xml_path)
        labels = np.asarray([index_of[name] for name, _ in objects], np.int32)
        return cleaned_record(image_path, boxes, labels, width, height, f" (annotations in {xml_path})", problems)

    return detection_source(collect(parsed, read, problems, "image skipped"), names, str(root), problems)


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
        width, height = image_size(image_path)
    objects = [_voc_object(index, obj, xml_path) for index, obj in enumerate(tree.findall("object"), start=1)]
    return image_path, width, height, objects, xml_path


def _voc_object(index: int, obj: ET.Element, xml_path: Path) -> tuple[str, list[float]]:
    """(name, xyxy box) of the `index`-th <object>; DataError naming the file and the object."""
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
            raise DataError(
                f"{xml_path}: object {index} ({name}) has <{tag}>{text}</{tag}>; expected a number", path=xml_path
            )
        coords.append(value)
    xmin, ymin, xmax, ymax = coords
    return name, [xmin - 1.0, ymin - 1.0, xmax, ymax]


def _voc_image(images_dir: Path, xml_path: Path) -> Path:
    for extension in IMAGE_EXTENSIONS:
        stem = xml_path.stem
        for candidate in (images_dir / f"{stem}{extension}", images_dir / f"{stem}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{images_dir / (xml_path.stem + '.jpg')}: image file not found (annotated by {xml_path})", path=xml_path
    )


def _xml_int(tree: ET.Element, tag: str, xml_path: Path) -> int:
    text = tree.findtext(tag)
    if text is None or not text.strip():
        return 0
    try:
        return int(float(text.strip()))
    except ValueError:
        raise DataError(f"{xml_path}: <{tag}> is {text!r}; expected a number", path=xml_path) from None
