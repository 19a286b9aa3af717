"""The embedded "shapes" dataset: deterministic synthetic images for all three tasks.

One renderer (`render_shapes`) draws filled circles, squares and triangles on varied backgrounds and
returns, with every image, the exact class ids, boxes, instance mask and semantic mask. Each shape is
drawn once as a mask and its colour is composited through that mask, so pixels, masks and boxes agree
exactly. The writers put classification, detection (COCO JSON) and segmentation (class-index PNG)
datasets on disk.

Only numpy and PIL are used here (no TensorFlow), so importing this module is fast.

Determinism: every image has its own generator, derived from `(seed, stream, split, [class], index)`
with `np.random.SeedSequence`, so an image never depends on how many others were written before it.
Detection and segmentation share the "scene" stream: the same seed gives them the same scenes.
`classification_sample` and `scene_sample` re-render exactly what the writers write.

Each writer records its arguments in `ROOT/shapes_manifest.json`, written last and atomically; a call
whose manifest is already there returns at once, a call with other arguments rewrites the dataset.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from kerascv_tl.utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "SHAPE_CLASSES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ShapesSample",
    "render_shapes",
    "classification_sample",
    "scene_sample",
    "is_empty_scene",
    "write_classification_dataset",
    "write_detection_dataset",
    "write_segmentation_dataset",
    "main",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
FORMAT_VERSION = 1
MANIFEST_NAME = "shapes_manifest.json"
# Present while a writer is at work: a root holding it (or a manifest) belongs to this module.
_INCOMPLETE_MARKER = ".shapes_incomplete"
# Everything any writer creates under its root; removed before a rewrite.
_OWNED_PATHS = ("train", "val", "images", "annotations", "classes.yaml")
SPLITS = ("train", "val")

_MIN_CONTRAST = 60.0  # mean abs RGB difference between a shape and what lies under it
_COLOUR_TRIES = 64
_PLACEMENT_TRIES = 16
_MIN_VISIBLE_FRACTION = 0.4  # a later shape should leave this much of each earlier one visible
_STREAM_CLASSIFICATION = 0
_STREAM_SCENES = 1
_SCENE_SIZE_FRACTIONS = (0.15, 0.45)


@dataclass(frozen=True)
class ShapesSample:
    """One rendered image with exact labels for classification, detection and segmentation."""

    image: np.ndarray  # uint8 [H, W, 3] RGB
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels of the visible pixels; x_max, y_max exclusive
    class_ids: np.ndarray  # int32 [N], index into SHAPE_CLASSES
    instance_mask: np.ndarray  # uint8 [H, W]: 0 background, k for the k-th returned shape (1-based)
    semantic_mask: np.ndarray  # uint8 [H, W]: 0 background, class_id + 1 on shape pixels


# --------------------------------------------------------------------------------------------------
# Rendering


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        height = width = int(image_size)
    else:
        height, width = (int(v) for v in image_size)
    if height < 8 or width < 8:
        raise ValueError(f"image_size must be at least 8x8, got {height}x{width}")
    return height, width


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 [H, W, 3] background: solid, linear gradient, low-amplitude noise or stripes."""
    kind = int(rng.integers(4))
    base = rng.integers(0, 256, size=3).astype(np.float32)
    if kind == 0:  # solid colour
        bg = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    elif kind in (1, 3):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        proj = xs * math.cos(angle) + ys * math.sin(angle)
        if kind == 1:  # linear gradient between two colours
            other = rng.integers(0, 256, size=3).astype(np.float32)
            t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
            bg = base + t[..., None] * (other - base)
        else:  # stripes of two nearby colours
            other = np.clip(base + rng.integers(-60, 61, size=3), 0, 255).astype(np.float32)
            half_period = rng.uniform(3.0, 10.0)
            on = (np.floor(proj / half_period).astype(np.int64) % 2).astype(bool)
            bg = np.where(on[..., None], other, base)
    else:  # low-amplitude noise around a base colour
        sigma = rng.uniform(4.0, 12.0)
        bg = base + rng.normal(0.0, sigma, size=(height, width, 3))
    return np.clip(np.rint(bg), 0, 255).astype(np.uint8)


def _shape_mask(
    rng: np.random.Generator, class_id: int, height: int, width: int, size_range: tuple[float, float]
) -> np.ndarray:
    """Draws one shape of random size, position (fully inside) and rotation; bool [H, W]."""
    side = min(height, width)
    size = rng.uniform(*size_range) * side
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    name = SHAPE_CLASSES[class_id]
    if name == "circle":  # ellipse with equal radii inside the inclusive box [x0, x0 + d]
        d = int(np.clip(round(size), 3, side - 1))
        x0 = int(rng.integers(0, width - d))
        y0 = int(rng.integers(0, height - d))
        draw.ellipse([x0, y0, x0 + d, y0 + d], fill=255)
    elif name == "square":  # axis-aligned, d pixels a side
        d = int(np.clip(round(size), 3, side))
        x0 = int(rng.integers(0, width - d + 1))
        y0 = int(rng.integers(0, height - d + 1))
        draw.rectangle([x0, y0, x0 + d - 1, y0 + d - 1], fill=255)
    elif name == "triangle":  # equilateral, rotated; its circumcircle lies inside the image
        radius = float(np.clip(0.6 * size, 2.0, (side - 1) / 2.0))
        cx = rng.uniform(radius, width - 1 - radius)
        cy = rng.uniform(radius, height - 1 - radius)
        theta = rng.uniform(0.0, 2.0 * math.pi)
        angles = [theta + k * 2.0 * math.pi / 3.0 for k in range(3)]
        points = [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]
        draw.polygon(points, fill=255)
    else:  # pragma: no cover - SHAPE_CLASSES and this function change together
        raise ValueError(f"unknown shape {name!r}")
    return np.asarray(canvas) > 0


def _place(
    rng: np.random.Generator,
    class_id: int,
    height: int,
    width: int,
    size_range: tuple[float, float],
    instance_mask: np.ndarray,
    full_areas: list[int],
) -> np.ndarray:
    """Picks a placement that leaves every earlier shape mostly visible (best of a few tries)."""
    best, best_score = None, -1.0
    for _ in range(_PLACEMENT_TRIES):
        mask = _shape_mask(rng, class_id, height, width, size_range)
        if not full_areas:
            return mask
        remaining = np.bincount(instance_mask[~mask], minlength=len(full_areas) + 1)[1:]
        score = float(np.min(remaining / np.maximum(np.asarray(full_areas), 1)))
        if score >= _MIN_VISIBLE_FRACTION:
            return mask
        if score > best_score:
            best, best_score = mask, score
    return best


def _dilate(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel (8-neighbourhood)."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def _contrasting_colour(rng: np.random.Generator, regions: Sequence[np.ndarray]) -> np.ndarray:
    """A colour whose mean abs RGB difference from each region's pixels exceeds _MIN_CONTRAST.

    `regions` are [n, 3] pixel arrays, one per thing the shape covers or borders (the background, each
    earlier shape), so the shape stands out from each of them, not just on average.
    """
    regions = [r.astype(np.int16) for r in regions if r.size]

    def score(colour: np.ndarray) -> float:
        return min((float(np.abs(r - colour).mean()) for r in regions), default=255.0)

    best, best_score = None, -1.0
    for _ in range(_COLOUR_TRIES):
        colour = rng.integers(0, 256, size=3).astype(np.int16)
        current = score(colour)
        if current > _MIN_CONTRAST:
            return colour.astype(np.uint8)
        if current > best_score:
            best, best_score = colour, current
    # Fallback: per channel, the extreme farthest from what lies under the shape.
    extreme = np.where(np.concatenate(regions).mean(axis=0) < 127.5, 255, 0).astype(np.int16)
    return (extreme if score(extreme) > best_score else best).astype(np.uint8)


def render_shapes(
    rng: np.random.Generator,
    image_size: int | tuple[int, int],
    num_shapes: int,
    class_ids: Sequence[int] | None = None,
    min_size_fraction: float = 0.25,
    max_size_fraction: float = 0.6,
) -> ShapesSample:
    """Renders `num_shapes` shapes on a random background, with exact labels.

    `image_size` is an int (square) or (height, width). Shape sizes are fractions of the shorter side.
    Later shapes occlude earlier ones; a fully occluded shape is dropped, so the sample may hold fewer
    than `num_shapes` shapes. `class_ids` fixes the classes in drawing order (random otherwise).
    """
    height, width = _hw(image_size)
    if not 0 <= num_shapes <= 255:
        raise ValueError(f"num_shapes must be in [0, 255], got {num_shapes}")
    if not 0.0 < min_size_fraction <= max_size_fraction <= 1.0:
        raise ValueError(
            f"need 0 < min_size_fraction <= max_size_fraction <= 1, got {min_size_fraction}, {max_size_fraction}"
        )
    if class_ids is None:
        classes = [int(c) for c in rng.integers(0, len(SHAPE_CLASSES), size=num_shapes)]
    else:
        classes = [int(c) for c in class_ids]
        if len(classes) != num_shapes:
            raise ValueError(f"got {len(classes)} class_ids for {num_shapes} shapes")
        if any(not 0 <= c < len(SHAPE_CLASSES) for c in classes):
            raise ValueError(f"class_ids must index SHAPE_CLASSES {SHAPE_CLASSES}, got {classes}")

    image = _background(rng, height, width)
    instance = np.zeros((height, width), np.uint8)
    full_areas: list[int] = []
    for k, class_id in enumerate(classes, start=1):
        mask = _place(rng, class_id, height, width, (min_size_fraction, max_size_fraction), instance, full_areas)
        # Contrast with everything the shape covers or borders, one region per thing (background, shape).
        near = _dilate(mask)
        under = instance[near]
        pixels = image[near]
        image[mask] = _contrasting_colour(rng, [pixels[under == j] for j in np.unique(under)])
        instance[mask] = k
        full_areas.append(int(mask.sum()))

    # Boxes from what is visible after occlusion; drop hidden shapes and renumber 1..N.
    lut = np.zeros(num_shapes + 1, np.uint8)
    semantic_lut = np.zeros(num_shapes + 1, np.uint8)
    boxes, kept = [], []
    for k, class_id in enumerate(classes, start=1):
        ys, xs = np.nonzero(instance == k)
        if xs.size == 0:
            continue
        kept.append(class_id)
        lut[k] = len(kept)
        semantic_lut[k] = class_id + 1
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return ShapesSample(
        image=image,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        class_ids=np.asarray(kept, np.int32),
        instance_mask=lut[instance],
        semantic_mask=semantic_lut[instance],
    )


def _image_rng(seed: int, stream: int, split: str, *key: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sequence = np.random.SeedSequence(int(seed), spawn_key=(stream, SPLITS.index(split), *key))
    return np.random.default_rng(sequence)


def classification_sample(
    seed: int, split: str, class_id: int, index: int, image_size: int | tuple[int, int] = 64
) -> ShapesSample:
    """The image `write_classification_dataset` writes as `split/<class>/<class>_<index>.png`."""
    rng = _image_rng(seed, _STREAM_CLASSIFICATION, split, int(class_id), int(index))
    return render_shapes(rng, image_size, 1, class_ids=[class_id])


def is_empty_scene(index: int) -> bool:
    """Scenes with index % 10 == 3 hold no shape: one in ten, and every split of 4+ images has one."""
    return index % 10 == 3


def scene_sample(
    seed: int, split: str, index: int, image_size: int | tuple[int, int] = 96, max_shapes: int = 4
) -> ShapesSample:
    """The scene the detection and segmentation writers write as `<index:05d>.png` in `split`."""
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")
    rng = _image_rng(seed, _STREAM_SCENES, split, int(index))
    num_shapes = 0 if is_empty_scene(index) else int(rng.integers(1, max_shapes + 1))
    return render_shapes(rng, image_size, num_shapes, None, *_SCENE_SIZE_FRACTIONS)


# --------------------------------------------------------------------------------------------------
# Writers


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _manifest(task: str, args: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so tuples compare equal to what a reader gets back.
    return json.loads(
        json.dumps({"format_version": FORMAT_VERSION, "task": task, "classes": list(SHAPE_CLASSES), "args": args})
    )


def _begin(root: Path, manifest: dict[str, Any]) -> bool:
    """Returns True if `root` already holds this dataset; otherwise clears it for writing."""
    manifest_path = root / MANIFEST_NAME
    marker = root / _INCOMPLETE_MARKER
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
        clashes = [name for name in _OWNED_PATHS if (root / name).exists()]
        if clashes:
            raise FileExistsError(
                f"{root} holds {clashes} but no {MANIFEST_NAME}: not a shapes dataset, refusing to overwrite"
            )
    root.mkdir(parents=True, exist_ok=True)
    marker.touch()
    manifest_path.unlink(missing_ok=True)  # the old dataset is no longer complete
    for name in _OWNED_PATHS:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return False


def _finish(root: Path, manifest: dict[str, Any]) -> Path:
    atomic_write_json(root / MANIFEST_NAME, manifest)
    (root / _INCOMPLETE_MARKER).unlink(missing_ok=True)
    return root


def _size_arg(image_size: int | Sequence[int]) -> int | list[int]:
    height, width = _hw(image_size)
    return height if height == width else [height, width]


def _scene_args(num_train: int, num_val: int, image_size: Any, max_shapes: int, seed: int) -> dict[str, Any]:
    return {
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": _size_arg(image_size),
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
    manifest = _manifest(
        "classification",
        {
            "train_per_class": int(train_per_class),
            "val_per_class": int(val_per_class),
            "image_size": _size_arg(image_size),
            "seed": int(seed),
        },
    )
    if _begin(root, manifest):
        return root
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for class_id, name in enumerate(SHAPE_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                sample = classification_sample(seed, split, class_id, index, image_size)
                _save_png(folder / f"{name}_{index:04d}.png", sample.image)
    return _finish(root, manifest)


def _coco_split(
    root: Path, split: str, count: int, image_size: int | tuple[int, int], max_shapes: int, seed: int
) -> dict[str, Any]:
    images, annotations = [], []
    for index in range(count):
        sample = scene_sample(seed, split, index, image_size, max_shapes)
        file_name = f"{index:05d}.png"
        _save_png(root / "images" / split / file_name, sample.image)
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
    manifest = _manifest(
        "detection",
        _scene_args(num_train, num_val, image_size, max_shapes, seed),
    )
    if _begin(root, manifest):
        return root
    for split, count in (("train", num_train), ("val", num_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        coco = _coco_split(root, split, count, image_size, max_shapes, seed)
        atomic_write_json(root / "annotations" / f"instances_{split}.json", coco)
    return _finish(root, manifest)


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
    manifest = _manifest(
        "segmentation",
        _scene_args(num_train, num_val, image_size, max_shapes, seed),
    )
    if _begin(root, manifest):
        return root
    for split, count in (("train", num_train), ("val", num_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            sample = scene_sample(seed, split, index, image_size, max_shapes)
            _save_png(root / split / "images" / f"{index:05d}.png", sample.image)
            _save_png(root / split / "masks" / f"{index:05d}.png", sample.semantic_mask)
    names = ("background", *SHAPE_CLASSES)
    atomic_write_text(root / "classes.yaml", "".join(f"- {name}\n" for name in names))
    return _finish(root, manifest)


_WRITERS = {
    "classification": write_classification_dataset,
    "detection": write_detection_dataset,
    "segmentation": write_segmentation_dataset,
}


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: `python -m kerascv_tl.data.synthetic {classification,detection,segmentation} ROOT`."""
    parser = argparse.ArgumentParser(
        prog="python -m kerascv_tl.data.synthetic", description="Write the synthetic shapes dataset."
    )
    parser.add_argument("task", choices=sorted(_WRITERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None, help="square side in pixels (task default if omitted)")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {"seed": args.seed}
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    path = _WRITERS[args.task](args.root, **kwargs)
    print(path)


if __name__ == "__main__":
    main()
