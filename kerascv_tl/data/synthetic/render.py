"""Rendering of the embedded "shapes" dataset: one image with exact labels for all three tasks.

`render_shapes` draws filled circles, squares and triangles on varied backgrounds and returns, with every
image, the exact class ids, boxes, instance mask and semantic mask. Each shape is drawn once as a mask and
its colour is composited through that mask, so pixels, masks and boxes agree exactly.

Determinism: every image has its own generator (`image_rng`), derived from `(seed, stream, split, [class],
index)` with `np.random.SeedSequence`, so an image never depends on how many others were written before it.
Detection and segmentation share the "scene" stream: the same seed gives them the same scenes.
`classification_sample` and `scene_sample` re-render exactly what the writers write.

Only numpy and PIL are used here (no TensorFlow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SHAPE_CLASSES",
    "SPLITS",
    "STREAM_CLASSIFICATION",
    "STREAM_MULTI_LABEL",
    "STREAM_SCENES",
    "ShapesSample",
    "classification_sample",
    "image_hw",
    "image_rng",
    "is_empty_scene",
    "render_shapes",
    "scene_sample",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
SPLITS = ("train", "val")
# Generator streams (the first spawn key): one per kind of image, so that kinds never share an image.
STREAM_CLASSIFICATION = 0
STREAM_SCENES = 1
STREAM_MULTI_LABEL = 2

_MIN_CONTRAST = 60.0  # mean abs RGB difference between a shape and what lies under it
_COLOUR_TRIES = 64
_PLACEMENT_TRIES = 16
_MIN_VISIBLE_FRACTION = 0.4  # a later shape should leave this much of each earlier one visible
_SCENE_SIZE_FRACTIONS = (0.15, 0.45)


@dataclass(frozen=True)
class ShapesSample:
    """One rendered image with exact labels for classification, detection and segmentation."""

    image: np.ndarray  # uint8 [H, W, 3] RGB
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels of the visible pixels; x_max, y_max exclusive
    class_ids: np.ndarray  # int32 [N], index into SHAPE_CLASSES
    instance_mask: np.ndarray  # uint8 [H, W]: 0 background, k for the k-th returned shape (1-based)
    semantic_mask: np.ndarray  # uint8 [H, W]: 0 background, class_id + 1 on shape pixels


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a (height, width) pair; ValueError under 8x8."""
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


def _classes_to_draw(rng: np.random.Generator, num_shapes: int, class_ids: Sequence[int] | None) -> list[int]:
    """`class_ids` checked against `num_shapes` and SHAPE_CLASSES, or `num_shapes` random classes."""
    if class_ids is None:
        return [int(c) for c in rng.integers(0, len(SHAPE_CLASSES), size=num_shapes)]
    classes = [int(c) for c in class_ids]
    if len(classes) != num_shapes:
        raise ValueError(f"got {len(classes)} class_ids for {num_shapes} shapes")
    if any(not 0 <= c < len(SHAPE_CLASSES) for c in classes):
        raise ValueError(f"class_ids must index SHAPE_CLASSES {SHAPE_CLASSES}, got {classes}")
    return classes


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
    height, width = image_hw(image_size)
    if not 0 <= num_shapes <= 255:
        raise ValueError(f"num_shapes must be in [0, 255], got {num_shapes}")
    if not 0.0 < min_size_fraction <= max_size_fraction <= 1.0:
        raise ValueError(
            f"need 0 < min_size_fraction <= max_size_fraction <= 1, got {min_size_fraction}, {max_size_fraction}"
        )
    classes = _classes_to_draw(rng, num_shapes, class_ids)
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


def image_rng(seed: int, stream: int, split: str, *key: int) -> np.random.Generator:
    """The generator of one image: `seed` spawned by (stream, split index, *key), independent of the others."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sequence = np.random.SeedSequence(int(seed), spawn_key=(stream, SPLITS.index(split), *key))
    return np.random.default_rng(sequence)


def classification_sample(
    seed: int, split: str, class_id: int, index: int, image_size: int | tuple[int, int] = 64
) -> ShapesSample:
    """The image `write_classification_dataset` writes as `split/<class>/<class>_<index>.png`."""
    rng = image_rng(seed, STREAM_CLASSIFICATION, split, int(class_id), int(index))
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
    rng = image_rng(seed, STREAM_SCENES, split, int(index))
    num_shapes = 0 if is_empty_scene(index) else int(rng.integers(1, max_shapes + 1))
    return render_shapes(rng, image_size, num_shapes, None, *_SCENE_SIZE_FRACTIONS)
