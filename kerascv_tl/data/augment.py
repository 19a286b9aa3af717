"""Batch augmentation from Keras preprocessing layers: flips, RandAugment, MixUp, CutMix.

The layers run inside the tf.data pipeline (not inside the model), so an exported model never contains
an augmentation layer that could default to training mode at serving time.
"""

from __future__ import annotations

import keras


def batch_augmenter(augment_config, seed: int):
    """Returns fn(images, one_hot_labels) -> (images, labels), or None when nothing is enabled."""
    layers = []
    if augment_config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if augment_config.rand_augment:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), seed=seed + 1))
    if augment_config.mixup_alpha > 0:
        layers.append(keras.layers.MixUp(alpha=augment_config.mixup_alpha, seed=seed + 2))
    if augment_config.cutmix_alpha > 0:
        layers.append(keras.layers.CutMix(factor=augment_config.cutmix_alpha, seed=seed + 3))
    if not layers:
        return None

    def apply(images, labels):
        data = {"images": images, "labels": labels}
        for layer in layers:
            data = layer(data, training=True)
        return data["images"], data["labels"]

    return apply
