"""tf.data pipelines for multi-label classification: classification's transforms, multi-hot float32 [C] labels.

Training: decode -> (cache, shrunk once) -> shuffle -> flip + random resized crop (`data.augment`) with
per-element stateless seeds -> batch -> RandAugment (`data.augment.rand_augment`) -> prefetch. Epoch e's order
and randomness come from `epoch_seed(seed, e)` alone, as in `kerascv_tl.data.pipeline`, so a resumed run sees
the batches an uninterrupted one would. Evaluation: `eval_transform`, the function the exported SavedModel runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import tensorflow as tf

from kerascv_tl.data.augment import batch_augmenter
from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.data.multi_label import MultiLabelSource
from kerascv_tl.data.transforms import (
    eval_transform,
    random_flip,
    random_resized_crop,
    resize_whole,
    shrink_for_training,
)

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig

__all__ = ["multi_label_eval_dataset", "multi_label_eval_images", "multi_label_training_epochs"]


def multi_label_training_epochs(
    source: MultiLabelSource, data_config: DataConfig, batch_size: int, seed: int
) -> EpochData:
    """Each epoch's training batches (float32 [B, S, S, 3] in [0, 255], float32 [B, C]), from `epoch_seed` only."""
    size, crop_fraction, augment = data_config.image_size, data_config.crop_fraction, data_config.augment
    buffer = max(1, min(len(source) or data_config.shuffle_buffer, data_config.shuffle_buffer))
    cached = None
    if data_config.cache:
        # Built once, so that every epoch's dataset reads the same in-memory cache (shrunk to save memory).
        cached = (
            source.decoded(shuffle=False)
            .map(
                lambda image, labels: (shrink_for_training(image, size, crop_fraction), labels),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            .cache()
        )

    def crop(element, index, this_seed):
        image, labels = element
        pair = tf.stack([tf.constant(this_seed, tf.int64), index])
        if augment.flip:
            image = random_flip(image, tf.random.experimental.stateless_fold_in(pair, 1))
        if augment.random_resized_crop:
            image = random_resized_crop(image, size, augment.min_crop_area, pair)
        else:
            image = resize_whole(image, size)
        return image, labels

    def make(epoch: int) -> tf.data.Dataset:
        this_seed = epoch_seed(seed, epoch)
        if cached is not None:
            ds = cached.shuffle(buffer, seed=this_seed, reshuffle_each_iteration=False)
        else:
            ds = source.decoded(shuffle=True, seed=this_seed)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62)))
        ds = ds.map(lambda element, index: crop(element, index, this_seed), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
        augmenter = batch_augmenter(augment, this_seed)  # RandAugment only: MixUp/CutMix are refused by the task
        if augmenter is not None:
            ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(lambda batch, k: augmenter(*batch, k))
        return ds.prefetch(tf.data.AUTOTUNE)

    return EpochData(make, steps=max(1, math.ceil(len(source) / batch_size)))


def multi_label_eval_images(source: MultiLabelSource, data_config: DataConfig) -> tf.data.Dataset:
    """Unbatched (float32 [S, S, 3] image in [0, 255], float32 [C] labels), in source order."""
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    return source.decoded(shuffle=False).map(
        lambda image, labels: (eval_transform(image, size, crop_fraction), labels), num_parallel_calls=tf.data.AUTOTUNE
    )


def multi_label_eval_dataset(
    source: MultiLabelSource, data_config: DataConfig, batch_size: int, cache: bool = False
) -> tf.data.Dataset:
    """Batched evaluation data (validation during `fit`, and the reports)."""
    ds = multi_label_eval_images(source, data_config)
    if cache:
        ds = ds.cache()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
