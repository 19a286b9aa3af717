"""tf.data pipelines for classification: decode -> (cache) -> shuffle -> crop -> batch -> augment -> prefetch.

Training: large images are shrunk once, optionally cached, shuffled with a seed, random-resized-cropped
with per-element stateless seeds, batched and augmented. Evaluation: `eval_transform` (resize + centre
crop), the same function the exported SavedModel runs.
"""

from __future__ import annotations

import tensorflow as tf

from kerascv_tl.data.augment import batch_augmenter
from kerascv_tl.data.classification import ImageSource
from kerascv_tl.data.transforms import eval_transform, random_resized_crop, resize_whole, shrink_for_training


def _one_hot(num_classes: int):
    def fn(image, label):
        return image, tf.one_hot(label, num_classes, dtype=tf.float32)

    return fn


def training_dataset(source: ImageSource, data_config, batch_size: int, seed: int) -> tf.data.Dataset:
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    augment = data_config.augment
    if data_config.cache:
        # Cache before shuffling, or every epoch would replay the first epoch's order.
        ds = source.decoded(shuffle=False)
        ds = ds.map(lambda im, y: (shrink_for_training(im, size, crop_fraction), y), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.cache().shuffle(min(len(source) or data_config.shuffle_buffer, data_config.shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    else:
        ds = source.decoded(shuffle=True, seed=seed)
        if source.paths is None:
            ds = ds.shuffle(min(len(source) or data_config.shuffle_buffer, data_config.shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda im, y: (shrink_for_training(im, size, crop_fraction), y), num_parallel_calls=tf.data.AUTOTUNE)
    crop_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def crop(element, random):
        image, label = element
        if augment.random_resized_crop:
            pair = tf.stack([tf.constant(seed, tf.int64), random])
            image = random_resized_crop(tf.cast(image, tf.float32), size, augment.min_crop_area, pair)
        else:
            image = resize_whole(tf.cast(image, tf.float32), size)
        return image, label

    ds = tf.data.Dataset.zip((ds, crop_seeds)).map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_one_hot(source.num_classes)).batch(batch_size)
    augmenter = batch_augmenter(augment, seed)
    if augmenter is not None:
        ds = ds.map(augmenter, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_images(source: ImageSource, data_config) -> tf.data.Dataset:
    """Unbatched (float32 [S, S, 3] image in [0, 255], int32 label), in source order."""
    size, crop_fraction = data_config.image_size, data_config.crop_fraction
    return source.decoded(shuffle=False).map(
        lambda im, y: (eval_transform(im, size, crop_fraction), y), num_parallel_calls=tf.data.AUTOTUNE
    )


def eval_dataset(source: ImageSource, data_config, batch_size: int, cache: bool = False) -> tf.data.Dataset:
    ds = eval_images(source, data_config)
    if cache:
        ds = ds.cache()
    return ds.map(_one_hot(source.num_classes)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
