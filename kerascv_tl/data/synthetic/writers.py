"""Writers of the embedded "shapes" dataset: classification folders, COCO detection, class-index masks.

Each writer records its arguments in `ROOT/shapes_manifest.json`, written last and atomically; a call
whose manifest is already there returns at once, a call with other arguments rewrites the dataset. A new
writer follows the same steps: `dataset_manifest`, `begin_dataset` (returns True when the dataset is
already there), `save_png` for each file, `finish_dataset`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from kerascv_tl.data.synthetic.render import SHAPE_CLASSES, classification_sample, image_hw, scene_sample
from kerascv_tl.utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "FORMAT_VERSION",
    "INCOMPLETE_MARKER",
    "MANIFEST_NAME",
    "OWNED_PATHS",
    "begin_dataset",
    "dataset_manifest",
    "finish_dataset",
    "save_png",
    "scene_args",
    "size_arg",
    "write_classification_dataset",
    "write_detection_dataset",
    "write_segmentation_dataset",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "shapes_manifest.json"
# Present while a writer is at work: a root holding it (or a manifest) belongs to this package.
INCOMPLETE_MARKER = ".shapes_incomplete"
# Everything any writer creates under its root; removed before a rewrite.
OWNED_PATHS = ("train", "val", "images", "annotations", "classes.yaml")


def save_png(path: Path, array: np.ndarray) -> None:
    """Writes `array` (uint8 [H, W] or [H, W, 3]) as a PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def dataset_manifest(task: str, args: dict[str, Any]) -> dict[str, Any]:
    """What `ROOT/shapes_manifest.json` holds for a `task` dataset written with `args`."""
    # Round-trip through JSON so tuples compare equal to what a reader gets back.
    return json.loads(
        json.dumps({"format_version": FORMAT_VERSION, "task": task, "classes": list(SHAPE_CLASSES), "args": args})
    )


def begin_dataset(root: Path, manifest: dict[str, Any]) -> bool:
    """Returns True if `root` already holds this dataset; otherwise clears it for writing."""
    manifest_path = root / MANIFEST_NAME
    marker = root / INCOMPLETE_MARKER
    if manifest_path.is_file():
        try:
            existing = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            existing = None
        if existing == manifest:
            marker.unlink(missing_ok=True)
            return True
    owned = manifest_path.is_file() or marker.exists()
    if not owned:
        clashes = [name for name in OWNED_PATHS if (root / name).exists()]
        if clashes:
            raise FileExistsError(
                f"{root} holds {clashes} but no {MANIFEST_NAME}: not a shapes dataset, refusing to overwrite"
            )
    root.mkdir(parents=True, exist_ok=True)
    marker.touch()
    manifest_path.unlink(missing_ok=True)  # the old dataset is no longer complete
    for name in OWNED_PATHS:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return False


def finish_dataset(root: Path, manifest: dict[str, Any]) -> Path:
    """Marks `root` complete: writes the manifest (atomically) and removes the incomplete marker."""
    atomic_write_json(root / MANIFEST_NAME, manifest)
    (root / INCOMPLETE_MARKER).unlink(missing_ok=True)
    return root


def size_arg(image_size: int | Sequence[int]) -> int | list[int]:
    """`image_size` as the manifest records it: an int for a square, else [height, width]."""
    height, width = image_hw(image_size)
    return height if height == width else [height, width]


def scene_args(num_train: int, num_val: int, image_size: Any, max_shapes: int, seed: int) -> dict[str, Any]:
    """The manifest arguments of a scene (detection or segmentation) dataset."""
    return {
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": size_arg(image_size),
        "max_shapes": int(max_shapes),
        "seed": int(seed),
    }


def write_classification_dataset(
    root: str | Path,
    train_per_class: int = 40,
    val_per_class: int = 12,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
) -> Path:
    """Writes `root/{train,val}/<class>/<class>_0000.png`: one shape per image, of the folder's class."""
    root = Path(root)
    manifest = dataset_manifest(
        "classification",
        {
            "train_per_class": int(train_per_class),
            "val_per_class": int(val_per_class),
            "image_size": size_arg(image_size),
            "seed": int(seed),
        },
    )
    if begin_dataset(root, manifest):
        return root
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for class_id, name in enumerate(SHAPE_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                sample = classification_sample(seed, split, class_id, index, image_size)
                save_png(folder / f"{name}_{index:04d}.png", sample.image)
    return finish_dataset(root, manifest)


def _coco_split(
    root: Path, split: str, count: int, image_size: int | tuple[int, int], max_shapes: int, seed: int
) -> dict[str, Any]:
    images, annotations = [], []
    for index in range(count):
        sample = scene_sample(seed, split, index, image_size, max_shapes)
        file_name = f"{index:05d}.png"
        save_png(root / "images" / split / file_name, sample.image)
        height, width = sample.image.shape[:2]
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
        areas = np.bincount(sample.instance_mask.ravel(), minlength=len(sample.class_ids) + 1)
        for k, (box, class_id) in enumerate(zip(sample.boxes.tolist(), sample.class_ids.tolist()), start=1):
            x0, y0, x1, y1 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": class_id + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(areas[k]),  # visible pixels, as COCO's segmentation area
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": f"kerascv_tl synthetic shapes, {split}", "version": str(FORMAT_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": class_id + 1, "name": name, "supercategory": "shape"} for class_id, name in enumerate(SHAPE_CLASSES)
        ],
    }


def write_detection_dataset(
    root: str | Path,
    num_train: int = 48,
    num_val: int = 16,
    image_size: int | tuple[int, int] = 96,
    max_shapes: int = 4,
    seed: int = 0,
) -> Path:
    """Writes `root/images/{train,val}/00000.png` and COCO `root/annotations/instances_{train,val}.json`.

    Category ids are class_id + 1; boxes are [x, y, w, h] of the visible pixels; no segmentation field.
    About one image in ten has no shape (see `is_empty_scene`).
    """
    root = Path(root)
    manifest = dataset_manifest(
        "detection",
        scene_args(num_train, num_val, image_size, max_shapes, seed),
    )
    if begin_dataset(root, manifest):
        return root
    for split, count in (("train", num_train), ("val", num_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        coco = _coco_split(root, split, count, image_size, max_shapes, seed)
        atomic_write_json(root / "annotations" / f"instances_{split}.json", coco)
    return finish_dataset(root, manifest)


def write_segmentation_dataset(
    root: str | Path,
    num_train: int = 48,
    num_val: int = 16,
    image_size: int | tuple[int, int] = 96,
    max_shapes: int = 4,
    seed: int = 0,
) -> Path:
    """Writes `root/{train,val}/{images,masks}/00000.png` and `root/classes.yaml`.

    Masks are single-channel class-index PNGs: 0 background, class_id + 1 on shapes. classes.yaml is a
    YAML list of names indexed by mask value: background, circle, square, triangle.
    """
    root = Path(root)
    manifest = dataset_manifest(
        "segmentation",
        scene_args(num_train, num_val, image_size, max_shapes, seed),
    )
    if begin_dataset(root, manifest):
        return root
    for split, count in (("train", num_train), ("val", num_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            sample = scene_sample(seed, split, index, image_size, max_shapes)
            save_png(root / split / "images" / f"{index:05d}.png", sample.image)
            save_png(root / split / "masks" / f"{index:05d}.png", sample.semantic_mask)
    names = ("background", *SHAPE_CLASSES)
    atomic_write_text(root / "classes.yaml", "".join(f"- {name}\n" for name in names))
    return finish_dataset(root, manifest)
