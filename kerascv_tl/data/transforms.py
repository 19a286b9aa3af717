"""Geometric transforms shared by training, evaluation and the exported serving graph.

Each task's serving resize lives here, next to the training code's, so a served image is resized exactly
as it was when the reported metrics were measured: `eval_transform` (classification: shorter side, centre
crop), `resize_with_pad` (detection: letterbox), `resize_image` and `class_map_at` (segmentation: the
whole image stretched, the logits resized back). Graph ops only.
"""

from __future__ import annotations

import math

import tensorflow as tf

from kerascv_tl.config import SEGMENTATION_TTA


def resize_shorter_side(image: tf.Tensor, target: int, upscale: bool = True) -> tf.Tensor:
    """Resizes [H, W, C] so its shorter side is `target`, keeping the aspect ratio (antialiased)."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    shorter = tf.minimum(height, width)
    scale = tf.cast(target, tf.float32) / shorter
    if not upscale:
        scale = tf.minimum(scale, 1.0)
    new_size = tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32)
    new_size = tf.maximum(new_size, target if upscale else 1)
    return tf.image.resize(image, new_size, method="bilinear", antialias=True)


def eval_resize_size(image_size: int, crop_fraction: float) -> int:
    return int(math.ceil(image_size / crop_fraction))


def eval_transform(image: tf.Tensor, image_size: int, crop_fraction: float) -> tf.Tensor:
    """uint8/float [H, W, 3] -> float32 [S, S, 3] in [0, 255]: shorter side to S / crop_fraction, centre crop."""
    resized = resize_shorter_side(image, eval_resize_size(image_size, crop_fraction))
    shape = tf.shape(resized)
    top = (shape[0] - image_size) // 2
    left = (shape[1] - image_size) // 2
    cropped = resized[top : top + image_size, left : left + image_size, :]
    return tf.ensure_shape(tf.cast(cropped, tf.float32), [image_size, image_size, 3])


def eval_transform_description(image_size: int, crop_fraction: float) -> str:
    """`eval_transform` in words (model cards)."""
    size = image_size
    return f"shorter side to ceil({size} / {crop_fraction}), centre crop {size}x{size}, bilinear antialiased"


def shrink_for_training(image: tf.Tensor, image_size: int, crop_fraction: float) -> tf.Tensor:
    """Downscales large images once before caching (less memory); smaller images pass through untouched."""
    target = eval_resize_size(image_size, crop_fraction)
    larger = tf.reduce_min(tf.shape(image)[:2]) > target
    # A resize to the same size is no cheaper than a real one (benchmarks/input_pipeline.py), so it is skipped.
    return tf.cond(
        larger,
        lambda: tf.cast(resize_shorter_side(image, target, upscale=False), tf.uint8),
        lambda: tf.cast(image, tf.uint8),
    )


def random_resized_crop(image: tf.Tensor, image_size: int, min_area: float, seed: tf.Tensor) -> tf.Tensor:
    """Inception-style crop: random area in [min_area, 1] and aspect in [3/4, 4/3], resized to S x S.

    `seed` is a shape-[2] int tensor; the crop is a pure function of (image, seed).
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(min_area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return resize_square(tf.slice(image, begin, size), image_size)


def resize_square(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """[H, W, 3] -> float32 [S, S, 3], bilinear; antialiased only when shrinking, where it matters.

    Enlarging, the antialiasing kernel is plain bilinear's, at 2-3x the cost (measured).
    """
    shape = tf.shape(image)
    shrinking = tf.reduce_max(shape[:2]) > image_size

    def resize(antialias: bool):
        return lambda: tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=antialias)

    resized = tf.cond(shrinking, resize(True), resize(False))
    return tf.ensure_shape(resized, [image_size, image_size, 3])


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Left-right flip with probability 1/2, a pure function of (image, seed) (`seed` int shape [2])."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def resize_whole(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Training without random crops: the whole image squeezed to S x S."""
    return resize_square(image, image_size)


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


def segmentation_logits(model, pixels: tf.Tensor, tta: str = "none") -> tf.Tensor:
    """A segmenter's logits [B, S, S, C] on `pixels` [B, S, S, 3]; with tta="flip" the mean of the logits of the
    images and of their mirror images (mirrored back), so left and right are treated alike. The evaluation and
    every export run this, so the metrics score what is served."""
    if tta not in SEGMENTATION_TTA:
        raise ValueError(f"unknown test-time augmentation {tta!r}; expected one of {SEGMENTATION_TTA}")
    logits = tf.cast(model(pixels, training=False), tf.float32)
    if tta == "none":
        return logits
    mirrored = tf.cast(model(tf.reverse(pixels, axis=[2]), training=False), tf.float32)
    return (logits + tf.reverse(mirrored, axis=[2])) / 2.0
