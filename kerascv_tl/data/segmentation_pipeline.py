"""The segmentation tf.data pipeline, and the examples at the original resolution for evaluation.

The model sees the whole image stretched to image_size x image_size (`transforms.resize_image`); its
logits are resized back to the original height and width (`transforms.class_map_at`) for evaluation and
in the exported SavedModel, so both score the same pixels. Masks hold class indices, IGNORE_INDEX for
pixels that count nowhere.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from kerascv_tl.data.class_balance import class_weights_from_counts
from kerascv_tl.data.decode import decode_file_of_size, read_image_file
from kerascv_tl.data.epochs import epoch_seed
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.mask_records import MaskRecord, SegmentationSource
from kerascv_tl.data.readers.masks import read_mask
from kerascv_tl.data.tolerant import map_skipping_errors
from kerascv_tl.data.transforms import resize_image

__all__ = [
    "CROP_AREA_RANGE",
    "CROP_ASPECT_RANGE",
    "PIXEL_COUNT_SIDE",
    "pixel_class_counts",
    "segmentation_class_weights",
    "segmentation_dataset",
    "segmentation_examples",
]

log = logging.getLogger(__name__)

CROP_AREA_RANGE = (0.25, 1.0)  # training: fraction of the image a random crop keeps
CROP_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)  # training: crop width / height
_CROP_ATTEMPTS = 10
# train.class_weight balanced counts the pixels of each training mask subsampled (every k-th row and column) to at
# most this many pixels a side: the weights need class proportions, and 64x64 keeps a thin class's share within a
# few percent while the bincount costs nothing next to reading the mask
PIXEL_COUNT_SIDE = 64


def segmentation_dataset(
    source: SegmentationSource,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    epoch: int = 0,
    flip: bool = True,
    random_crop: bool = True,
    min_crop_area: float = CROP_AREA_RANGE[0],
) -> tf.data.Dataset:
    """(images float32 [B, S, S, 3] in [0, 255], masks int32 [B, S, S]) with S = image_size.

    Images are decoded with `decode_image`, masks read with `read_mask` (through tf.numpy_function). A
    decoded image or mask whose size differs from the record's fails naming the file. Evaluation
    (`training=False`): source order, the image stretched with `resize_image`, the mask resized nearest.
    Training: the file list is shuffled with `epoch_seed(seed, epoch)`; each pair gets the same random
    crop (area `min_crop_area`-100% of the image, aspect 3/4-4/3; `random_crop=False`: the whole image), is
    resized to S x S (image bilinear, mask nearest) and flipped horizontally with probability 0.5 (unless
    `flip=False`), from stateless seeds (epoch seed, position in the epoch),
    so the same (seed, epoch) gives the same batches whatever came before (`data.epochs`). Masks only ever
    hold values of the original mask.

    Long: the TFDS and file branches share the per-pair transform defined inside it.
    """
    size = int(image_size)
    if training:
        seed = epoch_seed(seed, epoch)

    def transform(image, mask, random):
        if training:
            pair = tf.stack([tf.constant(seed, tf.int64), random])
            image, mask = _random_crop_flip(image, mask, size, pair, random_crop, flip, min_crop_area)
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
    ds = tf.data.Dataset.from_tensor_slices(
        (  # bytes: a name that is not UTF-8 still opens
            [os.fsencode(r.image) for r in source.records],
            [os.fsencode(r.mask) for r in source.records],
            np.asarray([[r.height, r.width] for r in source.records], np.int32),
        )
    )
    if training:
        ds = ds.shuffle(len(source), seed=seed, reshuffle_each_iteration=False)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
    # A pair that fails to load (or whose sizes disagree) is left out and named on stderr.
    ds = map_skipping_errors(
        ds,
        _pair_loader(source, transform),
        lambda element, random: tf.strings.join([element[0], " (mask ", element[1], ")"]),
    )
    return ds.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def _pair_loader(source: SegmentationSource, transform):
    """The per-pair map: decode the image, check its size, then read the mask (numpy) and `transform` both."""
    lookup = None if source.lookup is None else np.asarray(source.lookup, np.uint8)
    num_classes = source.num_classes

    def read(path, image_path, height, width):
        return _load_mask(path, image_path, height, width, lookup, num_classes)

    def load(element, random):
        image_path, mask_path, expected_size = element
        image = decode_file_of_size(image_path, expected_size, "the header's")
        with tf.control_dependencies([image]):  # the mask is read once the image is known to be right
            mask = tf.numpy_function(
                read, [mask_path, image_path, expected_size[0], expected_size[1]], tf.uint8, stateful=False
            )
        return transform(image, tf.ensure_shape(mask, [None, None]), random)

    return load


def _load_mask(
    path: bytes, image_path: bytes, height, width, lookup: np.ndarray | None, num_classes: int
) -> np.ndarray:
    name, image_name = (os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in (path, image_path))
    return read_mask(MaskRecord(image_name, name, int(width), int(height)), lookup, num_classes)


def _resize_mask(mask: tf.Tensor, size: int) -> tf.Tensor:
    """[H, W] integer mask -> [size, size], nearest neighbour (no new values)."""
    resized = tf.image.resize(mask[..., tf.newaxis], [size, size], method="nearest")
    return tf.ensure_shape(resized[..., 0], [size, size])


def _random_crop_flip(
    image: tf.Tensor,
    mask: tf.Tensor,
    size: int,
    seed: tf.Tensor,
    crop: bool = True,
    flip: bool = True,
    min_area: float = CROP_AREA_RANGE[0],
):
    """Joint scale-crop (area [min_area, 1], aspect CROP_ASPECT_RANGE) + horizontal flip, seeded; either off."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if crop:
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=crop_seed,
            min_object_covered=0.0,
            aspect_ratio_range=CROP_ASPECT_RANGE,
            area_range=(min_area, CROP_AREA_RANGE[1]),
            max_attempts=_CROP_ATTEMPTS,
            use_image_if_no_bounding_boxes=True,
        )
        image, mask = tf.slice(image, begin, extent), tf.slice(mask, begin[:2], extent[:2])
    image, mask = resize_image(image, size), _resize_mask(mask, size)
    if flip:
        flipped = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        mask = tf.cond(flipped, lambda: tf.reverse(mask, [1]), lambda: mask)
    return image, mask


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
                raise DataError(
                    f"{record.image}: decoded image is {image.shape[1]}x{image.shape[0]} but its header "
                    f"says {record.width}x{record.height}",
                    path=record.image,
                )
            mask = read_mask(record, source.lookup, source.num_classes)
        except DataError as error:  # changed or broken since the data check: leave it out, say which
            log.warning("skipped in evaluation: %s", error)
            continue
        yield record, image, mask


def pixel_class_counts(source: SegmentationSource, max_side: int = PIXEL_COUNT_SIDE) -> np.ndarray:
    """int64 [C] labelled pixels per class over `source`'s masks, each subsampled to at most `max_side` pixels a
    side (nearest: every k-th row and column); IGNORE_INDEX pixels count nowhere. A mask that cannot be read is
    left out (the data check names it)."""
    num_classes = source.num_classes
    counts = np.zeros(num_classes, np.int64)
    for mask in _training_masks(source):
        step = max(1, math.ceil(max(mask.shape) / max_side))
        values = mask[::step, ::step].ravel()
        counts += np.bincount(values[values < num_classes], minlength=num_classes)[:num_classes]
    return counts


def segmentation_class_weights(source: SegmentationSource, spec: str | Mapping[str, float]) -> np.ndarray | None:
    """float32 [C] per-class pixel weights for `train.class_weight` (None for none); balanced from
    `pixel_class_counts`."""
    if spec == "none":
        return None
    counts = pixel_class_counts(source) if spec == "balanced" else np.ones(source.num_classes, np.int64)
    weights = class_weights_from_counts(counts, source.class_names, spec)
    log.info("class weights: %s", ", ".join(f"{n} {w:.3g}" for n, w in zip(source.class_names, weights)))
    return weights


def _training_masks(source: SegmentationSource) -> Iterator[np.ndarray]:
    if source.tfds is not None:
        yield from (mask for _, _, mask in source.tfds.examples(source.lookup, source.num_classes))
        return

    def read(record: MaskRecord):
        try:
            return read_mask(record, source.lookup, source.num_classes)
        except DataError:
            return None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # PIL releases the GIL while it decodes
        yield from (mask for mask in pool.map(read, source.records) if mask is not None)
