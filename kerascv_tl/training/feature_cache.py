"""On-disk cache of frozen-backbone embeddings, keyed by everything that changes them.

The key covers the backbone name, its weights' provenance (file hash, preset handle, ImageNet loader),
the preprocessing, image size and crop, the precision when it is not float32, and the source's fingerprint
(file list, sizes, mtimes, labels).
Randomly initialised backbones also key on the seed. Files are .npz read with allow_pickle=False.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.data.records import ImageSource
from kerascv_tl.utils.io import atomic_path

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig

log = logging.getLogger(__name__)


def cache_key(backbone_info: dict, source: ImageSource, data_config: DataConfig, seed: int) -> str:
    parts = {
        "backbone": backbone_info["name"],
        "weights": backbone_info["weights_source"],
        "preprocessing": backbone_info["preprocessing"],
        "image_size": data_config.image_size,
        "crop_fraction": data_config.crop_fraction,
        "source": source.fingerprint(),
    }
    if backbone_info["weights_source"].get("kind") == "none":
        parts["seed"] = seed
    if backbone_info.get("precision", "float32") != "float32":  # 16-bit embeddings differ (float32 keys unchanged)
        parts["precision"] = backbone_info["precision"]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_embeddings(
    extractor: keras.Model,
    source: ImageSource,
    data_config: DataConfig,
    cache_dir: str | Path,
    key: str,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 [N, D], labels int32 [N]); computed once, then read from `cache_dir/key.npz`."""
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            log.info("feature cache hit: %s", path)
            return data["embeddings"], data["labels"]
    log.info("computing embeddings of %d images (cache miss: %s)", len(source), path)
    embed = _embedding_function(extractor, data_config.image_size)
    embeddings, labels = [], []
    for images, one_hot in eval_dataset(source, data_config, batch_size):
        embeddings.append(np.asarray(embed(images), np.float32))
        labels.append(np.argmax(one_hot.numpy(), axis=1).astype(np.int32))
    result = np.concatenate(embeddings), np.concatenate(labels)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, embeddings=result[0], labels=result[1])
    return result


_EMBEDDING_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _embedding_function(extractor: keras.Model, size: int):
    """The extractor traced once for every batch size (the last batch is smaller) and every split."""
    key = (size,)
    functions = _EMBEDDING_FUNCTIONS.setdefault(extractor, {})
    if key not in functions:
        functions[key] = tf.function(
            lambda images: extractor(images, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
        )
    return functions[key]


def cached_feature_data(
    extractor: keras.Model, backbone_info: dict, train: ImageSource, val: ImageSource, config: RecipeConfig
) -> tuple[EpochData, tf.data.Dataset]:
    """Training epochs and validation batches of (embedding, one-hot label), from the on-disk cache.

    The backbone runs once over the un-augmented images of each source (a cache hit costs nothing); epoch e
    shuffles the embeddings with `epoch_seed(seed, e)`, so a resumed run sees the same batches.
    """
    cache_dir = config.train.feature_cache_dir or f"{config.output_dir}/.feature_cache"
    batch = config.train.batch_size
    datasets = []
    for source in (train, val):
        key = cache_key(backbone_info, source, config.data, config.seed)
        embeddings, labels = cached_embeddings(extractor, source, config.data, cache_dir, key, batch)
        one_hot = keras.utils.to_categorical(labels, source.num_classes).astype(np.float32)
        datasets.append(tf.data.Dataset.from_tensor_slices((embeddings, one_hot)))
    train_embeddings, val_embeddings = datasets

    def epoch(e: int) -> tf.data.Dataset:
        shuffled = train_embeddings.shuffle(len(train), seed=epoch_seed(config.seed, e), reshuffle_each_iteration=False)
        return shuffled.batch(batch).prefetch(tf.data.AUTOTUNE)

    steps = max(1, math.ceil(len(train) / batch))
    return EpochData(epoch, steps), val_embeddings.batch(batch).prefetch(tf.data.AUTOTUNE)
