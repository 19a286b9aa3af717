"""The detection tf.data pipeline: letterboxed images and padded box batches, with training augmentation.

`detection_dataset` decodes with `decode_image`, letterboxes with `transforms.resize_with_pad` (scale the
longer side to `image_size`, pad bottom/right with 0), maps boxes into model-input pixels and pads each
batch to `max_boxes` boxes (boxes 0, labels -1: the padding KerasHub's RetinaNet label encoder ignores).
`resize_with_pad` is also the resize of the exported serving graph: boxes predicted in model pixels map
back to original pixels by dividing by the returned scale.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf

from kerascv_tl.data.augment import reseeder
from kerascv_tl.data.boxes import BOX_FORMAT, empty_boxes
from kerascv_tl.data.decode import decode_file_of_size
from kerascv_tl.data.epochs import epoch_seed
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.records import DetectionSource
from kerascv_tl.data.tolerant import map_skipping_errors
from kerascv_tl.data.transforms import resize_with_pad

__all__ = ["LABEL_PADDING", "MIN_TRAIN_BOX_SIDE", "SCALE_JITTER", "detection_dataset"]

log = logging.getLogger(__name__)

LABEL_PADDING = -1  # label of a padding box in a batch (its box is all zeros)
SCALE_JITTER = (0.8, 1.2)  # training: random factor on the letterbox scale
MIN_TRAIN_BOX_SIDE = 1.0  # training: boxes narrower or shorter than this (model pixels) after augmentation go


def detection_dataset(
    source: DetectionSource,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    max_boxes: int = 100,
    epoch: int = 0,
    flip: bool = True,
    scale_jitter: bool = True,
) -> tf.data.Dataset:
    """(images float32 [B, S, S, 3] in [0, 255], {"boxes": float32 [B, M, 4], "labels": int32 [B, M]}).

    Boxes are xyxy in model-input pixels; each image's boxes come first, then padding up to
    M = `max_boxes` (boxes 0, labels -1); boxes beyond `max_boxes` are dropped (a warning says how many
    images have more). Evaluation (`training=False`): source order, `resize_with_pad`. Training: the file
    list is shuffled with `epoch_seed(seed, epoch)`, the letterbox scale is jittered by a factor in
    [0.8, 1.2] (content over the canvas is randomly cropped; `scale_jitter=False`: the plain letterbox), images
    are flipped horizontally with `keras.layers.RandomFlip(bounding_box_format="xyxy")` (unless `flip=False`,
    `data.augment.flip`), and afterwards boxes are clipped to the canvas
    and boxes with a side under 1 model pixel become padding. The same (seed, epoch) gives the same batches,
    whatever came before (`data.epochs`).
    """
    if training:
        seed = epoch_seed(seed, epoch)
    if not source.records:
        raise DataError(f"{source.description}: no images")
    size, max_boxes = int(image_size), int(max_boxes)
    ds = _records_dataset(source, max_boxes)
    if training:
        ds = ds.shuffle(len(source), seed=seed, reshuffle_each_iteration=False)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
    min_side = MIN_TRAIN_BOX_SIDE if training else 0.0
    # An image that fails to decode or has another size than its annotations say is left out and named.
    ds = map_skipping_errors(
        ds, _loader(size, max_boxes, training and scale_jitter, seed, min_side), lambda element, random: element[0]
    )
    ds = ds.padded_batch(
        batch_size,
        padded_shapes=([size, size, 3], {"boxes": [max_boxes, 4], "labels": [max_boxes]}),
        padding_values=(0.0, {"boxes": 0.0, "labels": LABEL_PADDING}),
    )
    if training and flip:
        ds = _flipped(ds, seed, size, max_boxes, min_side)
    return ds.prefetch(tf.data.AUTOTUNE)


def _records_dataset(source: DetectionSource, max_boxes: int) -> tf.data.Dataset:
    """(path bytes, [H, W], ragged boxes, ragged labels) per record, in source order."""
    over = sum(1 for r in source.records if len(r.boxes) > max_boxes)
    if over:
        log.warning(
            "%s: %d image(s) have more than max_boxes=%d boxes; the extra boxes are not used",
            source.description,
            over,
            max_boxes,
        )
    counts = np.asarray([len(r.boxes) for r in source.records], np.int64)
    all_boxes = np.concatenate([r.boxes for r in source.records] + [empty_boxes()]).astype(np.float32)
    all_labels = np.concatenate([r.labels for r in source.records] + [np.zeros([0], np.int32)]).astype(np.int32)
    sizes = np.asarray([[r.height, r.width] for r in source.records], np.int32)
    return tf.data.Dataset.from_tensor_slices(
        (
            [os.fsencode(r.path) for r in source.records],  # bytes: a name that is not UTF-8 still opens
            sizes,
            tf.RaggedTensor.from_row_lengths(all_boxes, counts),
            tf.RaggedTensor.from_row_lengths(all_labels, counts),
        )
    )


def _loader(size: int, max_boxes: int, jitter: bool, seed: int, min_side: float):
    """The per-image map: decode, check the size, letterbox (scale-jittered with `jitter`), boxes to model pixels."""

    def load(element, random):
        path, expected_size, boxes, labels = element
        if isinstance(boxes, tf.RaggedTensor):
            boxes, labels = boxes.to_tensor(), labels.to_tensor()
        boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        image = decode_file_of_size(path, expected_size, "the annotations'")
        if jitter:
            pair = tf.stack([tf.constant(seed, tf.int64), random])
            image, scale, offset = _jittered_letterbox(image, size, pair)
            boxes = boxes * scale - tf.tile(offset, [2])[tf.newaxis]
        else:
            image, scale = resize_with_pad(image, size)
            boxes = boxes * scale
        boxes, labels = _keep_boxes(boxes, labels, size, min_side)
        return tf.ensure_shape(image, [size, size, 3]), {"boxes": boxes[:max_boxes], "labels": labels[:max_boxes]}

    return load


def _flipped(ds: tf.data.Dataset, seed: int, size: int, max_boxes: int, min_side: float) -> tf.data.Dataset:
    """Training batches flipped horizontally with RandomFlip, then boxes clipped and compacted."""
    import keras

    # Sequential map: the layer's seed generator is a variable, reseeded from the batch index so the
    # flips are the same for the same (seed, epoch) however often the dataset is iterated. RandomFlip
    # replaces the boxes entry of the dict it is given (with normalised boxes), so it gets a fresh dict;
    # padding boxes come back as (S, 0, S, 0).
    flip = keras.layers.RandomFlip("horizontal", bounding_box_format=BOX_FORMAT, seed=seed)
    reseed = reseeder([flip])

    def augment(images, targets, index):
        reseed(index)
        out = flip(
            {"images": images, "bounding_boxes": {"boxes": targets["boxes"], "labels": targets["labels"]}},
            training=True,
        )
        # RandomFlip hands the labels back as float32.
        labels = tf.cast(out["bounding_boxes"]["labels"], tf.int32)
        boxes, labels = _compact_batch(out["bounding_boxes"]["boxes"], labels, size, max_boxes, min_side)
        return tf.ensure_shape(out["images"], [None, size, size, 3]), {"boxes": boxes, "labels": labels}

    return tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(lambda batch, k: augment(*batch, k))


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
    cropped = resized[offset[0] : offset[0] + size, offset[1] : offset[1] + size]
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
