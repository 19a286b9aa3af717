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
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.classification import ImageSource
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.utils.io import atomic_path

log = logging.getLogger(__name__)


def cache_key(backbone_info: dict, source: ImageSource, data_config, seed: int) -> str:
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


def cached_embeddings(extractor: keras.Model, source: ImageSource, data_config, cache_dir: str | Path, key: str,
                      batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
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


_EMBEDDING_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _embedding_function(extractor: keras.Model, size: int):
    """The extractor traced once for every batch size (the last batch is smaller) and every split."""
    key = (size,)
    functions = _EMBEDDING_FUNCTIONS.setdefault(extractor, {})
    if key not in functions:
        functions[key] = tf.function(lambda images: extractor(images, training=False),
                                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    return functions[key]
