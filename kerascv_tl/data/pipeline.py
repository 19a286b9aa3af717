"""tf.data pipelines for classification: decode -> (cache) -> shuffle -> crop -> batch -> augment -> prefetch.

The same pipelines serve multi-label classification (`one_hot=False`: its sources already yield multi-hot
float32 [C] labels); anything with `decoded()`, `paths`, `num_classes` and a length is a source here.

Training: images are decoded (and, when cached, shrunk once first), shuffled, flipped and
random-resized-cropped with per-element stateless seeds, batched and augmented; epoch e's order and randomness come from
`epoch_seed(seed, e)` alone, so a resumed run sees the batches an uninterrupted one would.
Evaluation: `eval_transform` (resize + centre crop), the same function the exported SavedModel runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import tensorflow as tf

from kerascv_tl.data.augment import batch_augmenter
from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.data.records import ImageSource
from kerascv_tl.data.transforms import (
    eval_transform,
    random_flip,
    random_resized_crop,
    resize_whole,
    shrink_for_training,
)

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig


def _one_hot(num_classes: int):
    def fn(image, label):
        return image, tf.one_hot(label, num_classes, dtype=tf.float32)

    return fn


def training_epochs(
    source: ImageSource, data_config: DataConfig, batch_size: int, seed: int, one_hot: bool = True
) -> EpochData:
    """Each epoch's training batches, drawn from `epoch_seed(seed, epoch)` only (see `data.epochs`); labels are
    one-hot encoded from class indices, or with `one_hot=False` kept as the source gives them."""
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    augment = data_config.augment
    shrink = lambda im, y: (shrink_for_training(im, size, crop_fraction), y)  # noqa: E731
    buffer = min(len(source) or data_config.shuffle_buffer, data_config.shuffle_buffer)
    cached = None
    if data_config.cache:
        # Built once, so that every epoch's dataset reads the same in-memory cache. Shrunk to save memory;
        # uncached images are cropped from the decoded pixels directly (one resize instead of two).
        cached = source.decoded(shuffle=False).map(shrink, num_parallel_calls=tf.data.AUTOTUNE).cache()

    def crop(element, index, epoch_seed_):
        image, label = element
        pair = tf.stack([tf.constant(epoch_seed_, tf.int64), index])
        if augment.flip:
            image = random_flip(image, tf.random.experimental.stateless_fold_in(pair, 1))
        if augment.random_resized_crop:
            image = random_resized_crop(image, size, augment.min_crop_area, pair)
        else:
            image = resize_whole(image, size)
        return image, label

    def make(epoch: int) -> tf.data.Dataset:
        this_seed = epoch_seed(seed, epoch)
        if cached is not None:
            ds = cached.shuffle(buffer, seed=this_seed, reshuffle_each_iteration=False)
        else:
            ds = source.decoded(shuffle=True, seed=this_seed)
            if source.paths is None:
                ds = ds.shuffle(buffer, seed=this_seed, reshuffle_each_iteration=False)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
        ds = ds.map(lambda element, index: crop(element, index, this_seed), num_parallel_calls=tf.data.AUTOTUNE)
        if one_hot:
            ds = ds.map(_one_hot(source.num_classes))
        ds = ds.batch(batch_size)
        augmenter = batch_augmenter(augment, this_seed)
        if augmenter is not None:
            # Sequential: the layers' seed generators are variables (reseeded from the batch index).
            ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(lambda batch, k: augmenter(*batch, k))
        return ds.prefetch(tf.data.AUTOTUNE)

    return EpochData(make, steps=math.ceil(len(source) / batch_size))


def training_dataset(
    source: ImageSource, data_config: DataConfig, batch_size: int, seed: int, epoch: int = 0
) -> tf.data.Dataset:
    """One epoch of training batches (`training_epochs(...).make(epoch)`)."""
    return training_epochs(source, data_config, batch_size, seed).make(epoch)


def eval_images(source: ImageSource, data_config: DataConfig) -> tf.data.Dataset:
    """Unbatched (float32 [S, S, 3] image in [0, 255], int32 label), in source order."""
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    return source.decoded(shuffle=False).map(
        lambda im, y: (eval_transform(im, size, crop_fraction), y), num_parallel_calls=tf.data.AUTOTUNE
    )


def eval_dataset(
    source: ImageSource, data_config: DataConfig, batch_size: int, cache: bool = False, one_hot: bool = True
) -> tf.data.Dataset:
    """Batches of `eval_images` (validation during `fit`, the reports), labels one-hot unless `one_hot=False`."""
    ds = eval_images(source, data_config)
    if cache:
        ds = ds.cache()
    if one_hot:
        ds = ds.map(_one_hot(source.num_classes))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
