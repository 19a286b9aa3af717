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

import numpy as np
import tensorflow as tf

from kerascv_tl.config_checks import ConfigError
from kerascv_tl.data.augment import batch_augmenter
from kerascv_tl.data.class_balance import balanced_order, with_sample_weights
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
    source: ImageSource,
    data_config: DataConfig,
    batch_size: int,
    seed: int,
    one_hot: bool = True,
    class_weights: np.ndarray | None = None,
) -> EpochData:
    """Each epoch's training batches, drawn from `epoch_seed(seed, epoch)` only (see `data.epochs`); labels are
    one-hot encoded from class indices, or with `one_hot=False` kept as the source gives them.

    `class_weights` (float32 [C], `data.class_balance`): batches become (images, labels, sample weights), the
    weights computed after MixUp / CutMix from the mixed labels. `data.sampling: balanced` (one-hot labels):
    each epoch's order is `balanced_order`; with `data.cache` every class has its own cache and the epoch
    reads them in the order of that draw's classes."""
    size, augment = data_config.image_size, data_config.augment
    decoded = _decoded_epochs(source, data_config, seed, balanced=one_hot and data_config.sampling == "balanced")

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
        ds = decoded(epoch)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
        ds = ds.map(lambda element, index: crop(element, index, this_seed), num_parallel_calls=tf.data.AUTOTUNE)
        if one_hot:
            ds = ds.map(_one_hot(source.num_classes))
        ds = ds.batch(batch_size)
        augmenter = batch_augmenter(augment, this_seed)
        if augmenter is not None:
            # Sequential: the layers' seed generators are variables (reseeded from the batch index).
            ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(lambda batch, k: augmenter(*batch, k))
        if class_weights is not None:
            ds = with_sample_weights(ds, class_weights)
        return ds.prefetch(tf.data.AUTOTUNE)

    return EpochData(make, steps=math.ceil(len(source) / batch_size))


def _decoded_epochs(source: ImageSource, data_config: DataConfig, seed: int, balanced: bool):
    """fn(epoch) -> that epoch's (uint8 image, label) in training order: shuffled, or `balanced_order`'s."""
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    shrink = lambda im, y: (shrink_for_training(im, size, crop_fraction), y)  # noqa: E731
    buffer = min(len(source) or data_config.shuffle_buffer, data_config.shuffle_buffer)
    if balanced:
        if source.paths is None:
            raise ConfigError(
                f"data.sampling: balanced draws from the training labels, which {source.description} reads only "
                "while training (TFDS); use train.class_weight instead"
            )
        caches = _class_caches(source, shrink) if data_config.cache else None
        return lambda epoch: _balanced_images(source, caches, seed, epoch)
    if data_config.cache:
        # Built once, so that every epoch's dataset reads the same in-memory cache. Shrunk to save memory;
        # uncached images are cropped from the decoded pixels directly (one resize instead of two).
        cached = source.decoded(shuffle=False).map(shrink, num_parallel_calls=tf.data.AUTOTUNE).cache()
        return lambda epoch: cached.shuffle(buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)

    def shuffled(epoch: int) -> tf.data.Dataset:
        this_seed = epoch_seed(seed, epoch)
        ds = source.decoded(shuffle=True, seed=this_seed)
        if source.paths is None:
            ds = ds.shuffle(buffer, seed=this_seed, reshuffle_each_iteration=False)
        return ds

    return shuffled


def _class_caches(source: ImageSource, shrink) -> dict[int, tf.data.Dataset]:
    """One in-memory cache of shrunk decoded images per class present, filled here once: an epoch reads
    only part of a common class, and a cache read partially is dropped rather than kept."""
    caches = {}
    for cls in np.unique(source.labels):
        members = np.flatnonzero(source.labels == cls)
        part = source.subset(members, source.description).decoded(shuffle=False)
        caches[int(cls)] = part.map(shrink, num_parallel_calls=tf.data.AUTOTUNE).cache()
        caches[int(cls)].reduce(0, lambda count, _: count + 1)
    return caches


def _balanced_images(source: ImageSource, caches, seed: int, epoch: int) -> tf.data.Dataset:
    """(uint8 image, label) in the order of `balanced_order(labels, seed, epoch)`; from per-class caches
    (each shuffled per epoch and repeated) the draw's class sequence is kept, the member within a class is the
    cache's next one."""
    order = balanced_order(source.labels, seed, epoch)
    if caches is None:
        return source.subset(order, source.description).decoded(shuffle=False)
    this_seed = epoch_seed(seed, epoch)
    classes = sorted(caches)
    streams = [
        caches[c]
        .shuffle(int(np.sum(source.labels == c)), seed=epoch_seed(this_seed, i), reshuffle_each_iteration=False)
        .repeat()
        for i, c in enumerate(classes)
    ]
    position = {c: i for i, c in enumerate(classes)}
    choices = np.asarray([position[int(c)] for c in source.labels[order]], np.int64)
    return tf.data.Dataset.choose_from_datasets(streams, tf.data.Dataset.from_tensor_slices(choices))


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
