"""Batch augmentation from Keras preprocessing layers: RandAugment, MixUp, CutMix.

The layers run inside the tf.data pipeline (not inside the model), so an exported model never contains
an augmentation layer that could default to training mode at serving time. Classification's horizontal
flip is drawn per image with the random crop (`data.pipeline`): flipping the small uint8 source before
resizing costs a tenth of flipping the float32 batch after it (benchmarks/input_pipeline.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from kerascv_tl.utils.seeds import seed_generators

if TYPE_CHECKING:
    from kerascv_tl.config import AugmentConfig


def reseeder(layers):
    """fn(batch_index) that puts every seed generator of `layers` at a state given by the batch index.

    Keras augmentation layers draw from seed generators, variables advanced on every call. In a tf.data
    pipeline that makes the draws depend on how often the dataset was iterated before (Keras iterates it
    once more to build a distributed model, a resumed run starts afresh); reseeding each batch from its
    index makes batch k of an epoch the same however it is reached.
    """
    generators = seed_generators(*layers)
    initial = [int(g.state.numpy()[0]) for g in generators]

    def reseed(index):
        for generator, first in zip(generators, initial):
            generator.state.assign(
                tf.stack([tf.constant(first, generator.state.dtype), tf.cast(index, generator.state.dtype) * 1024])
            )

    return reseed


def batch_augmenter(augment_config: AugmentConfig, seed: int):
    """Returns fn(images, one_hot_labels, batch_index) -> (images, labels), or None when nothing is enabled.

    Batch k's random draws depend only on `seed` and k (`reseeder`)."""
    layers = []
    if augment_config.rand_augment:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), seed=seed + 1))
    if augment_config.mixup_alpha > 0:
        layers.append(keras.layers.MixUp(alpha=augment_config.mixup_alpha, seed=seed + 2))
    if augment_config.cutmix_alpha > 0:
        layers.append(keras.layers.CutMix(factor=augment_config.cutmix_alpha, seed=seed + 3))
    if not layers:
        return None

    reseed = reseeder(layers)

    def apply(images, labels, index):
        reseed(index)
        data = {"images": images, "labels": labels}
        for layer in layers:
            data = layer(data, training=True)
        return data["images"], data["labels"]

    return apply
