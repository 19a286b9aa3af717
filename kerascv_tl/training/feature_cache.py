"""On-disk cache of frozen-backbone embeddings, one row per image, keyed by everything that changes them.

The cache key (`cache_key`) covers the backbone name, its weights' provenance (file hash, preset handle,
ImageNet loader), the preprocessing, image size and crop, and the precision when it is not float32; randomly
initialised backbones also key on the seed. Under one key, each image has its own row, found by the image's key
(`image_keys`: the file's absolute path, size and modification time), so any subset of the images a key has seen
is a cache hit: the folds of a cross-validation, a run whose validation split moved, a dataset that grew (only
the new images are embedded). Labels are not cached (they come from the source), so relabelling costs nothing.
A view of the training images (`train.cache_views`: mirrored, zoomed) is its own key, the same key plus the view,
so the evaluation images' rows are shared with runs that cache no views.

Files: `cache_dir/<key>-<shard>.npz`, one shard per computation (the images embedded that time), each written
atomically and read with allow_pickle=False. Two processes filling the same key write different shards; a row
found twice is the same embedding. A TFDS split has no files to key: its rows are keyed by (name, split, count,
index) and it is embedded whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.config_checks import CACHE_VIEWS
from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.data.pipeline import eval_images
from kerascv_tl.data.records import ImageSource
from kerascv_tl.utils.io import atomic_path

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig

log = logging.getLogger(__name__)

_KEY_CHARS = 32
# A "zoom" view (`train.cache_views`) keeps the central ZOOM_FRACTION of the evaluation crop, cut from the file at
# its full resolution.
ZOOM_FRACTION = 0.8


def feature_cache_dir(config: RecipeConfig) -> str:
    """Where a run keeps its embeddings: `train.feature_cache_dir`, else `<output_dir>/.feature_cache`."""
    return config.train.feature_cache_dir or f"{config.output_dir}/.feature_cache"


def cache_key(backbone_info: dict, data_config: DataConfig, seed: int, view: str | None = None) -> str:
    """What makes one image's embedding: the backbone, its weights, preprocessing, size, crop and precision, and
    the view (`CACHE_VIEWS`) when it is not the evaluation image itself."""
    parts = {
        "backbone": backbone_info["name"],
        "weights": backbone_info["weights_source"],
        "preprocessing": backbone_info["preprocessing"],
        "image_size": data_config.image_size,
        "crop_fraction": data_config.crop_fraction,
        "layout": "per-image",  # files of the earlier per-source layout never match this key
    }
    if backbone_info["weights_source"].get("kind") == "none":
        parts["seed"] = seed
    if backbone_info.get("precision", "float32") != "float32":  # 16-bit embeddings differ (float32 keys unchanged)
        parts["precision"] = backbone_info["precision"]
    if view is not None:  # the evaluation image's key is unchanged by the views
        parts["view"] = view
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:_KEY_CHARS]


def image_keys(source: ImageSource) -> list[str]:
    """One key per example: a file's absolute path, size and modification time (a changed file is a new key)."""
    lines = []
    if source.paths is None:
        lines = [f"tfds:{source.tfds_name}:{source.tfds_split}:{len(source)}:{i}" for i in range(len(source))]
    else:
        for path in source.paths:
            stat = os.stat(path)
            lines.append(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return [hashlib.sha256(line.encode("utf-8", "surrogateescape")).hexdigest()[:_KEY_CHARS] for line in lines]


def read_cache(cache_dir: str | Path, key: str) -> dict[str, np.ndarray]:
    """Every row cached under `key`: {image key: float32 [D] embedding}."""
    rows: dict[str, np.ndarray] = {}
    for shard in sorted(Path(cache_dir).glob(f"{key}-*.npz")):
        with np.load(shard, allow_pickle=False) as data:
            for image_key, row in zip(data["keys"].tolist(), data["embeddings"]):
                rows.setdefault(image_key, row)
    return rows


def cached_embeddings(
    extractor: keras.Model,
    source: ImageSource,
    data_config: DataConfig,
    cache_dir: str | Path,
    key: str,
    batch_size: int = 32,
    view: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 [N, D], labels int32 [N]) in source order; the images `cache_dir` holds no row for
    under `key` are embedded and written as one new shard. An image that fails to decode is left out (and
    named on stderr), as the image pipelines leave it out. `view`: one of `CACHE_VIEWS` (with the `key` that
    `cache_key` gives it), None for the evaluation image."""
    keys = image_keys(source)
    rows = read_cache(cache_dir, key)
    missing = [i for i, image_key in enumerate(keys) if image_key not in rows]
    if not missing:
        log.info("feature cache hit: %d images (%s, key %s)", len(keys), cache_dir, key)
    else:
        log.info(
            "computing embeddings of %d of %d images (cache miss: %s, key %s)", len(missing), len(keys), cache_dir, key
        )
        computed = _embed(extractor, source, missing, data_config, batch_size, view)
        if computed:
            new_keys = sorted({keys[i] for i in computed})
            shard = hashlib.sha256("".join(new_keys).encode()).hexdigest()[:16]
            with atomic_path(Path(cache_dir) / f"{key}-{shard}.npz", suffix=".npz") as tmp:
                np.savez(
                    tmp,
                    keys=np.asarray([keys[i] for i in computed]),
                    embeddings=np.stack(list(computed.values())),
                )
            rows.update({keys[i]: row for i, row in computed.items()})
    kept = [i for i, image_key in enumerate(keys) if image_key in rows]
    if not kept:
        raise ValueError(f"{source.description}: no image could be decoded to embed")
    embeddings = np.stack([rows[keys[i]] for i in kept]).astype(np.float32, copy=False)
    return embeddings, np.asarray(source.labels, np.int32)[kept]


def view_data_config(data_config: DataConfig, view: str | None) -> DataConfig:
    """The evaluation transform `view` starts from: a zoom view crops the file closer (from its full resolution)."""
    if view is not None and view not in CACHE_VIEWS:
        raise ValueError(f"unknown cache view {view!r}; choose from {', '.join(CACHE_VIEWS)}")
    if view is None or not view.startswith("zoom"):
        return data_config
    return dataclasses.replace(data_config, crop_fraction=data_config.crop_fraction * ZOOM_FRACTION)


def view_image(image: tf.Tensor, view: str | None) -> tf.Tensor:
    """The image of `view_data_config` as `view` sees it (mirrored for a flip view)."""
    return tf.image.flip_left_right(image) if view is not None and view.endswith("flip") else image


def _embed(
    extractor: keras.Model,
    source: ImageSource,
    indices: list[int],
    data_config: DataConfig,
    batch_size: int,
    view: str | None = None,
) -> dict[int, np.ndarray]:
    """{index in `source`: embedding of `view`} for `indices`, the images that decode."""
    data_config = view_data_config(data_config, view)
    if source.paths is None:  # TFDS decodes every example, in order: number them as they come
        images = eval_images(source, data_config).map(lambda image, label: image)
        numbered = tf.data.Dataset.zip((images, tf.data.Dataset.range(len(source))))
    else:
        # The files to embed, labelled with their index: the tolerant decode may leave one out.
        wanted = ImageSource(
            source.class_names, np.asarray(indices, np.int64), [source.paths[i] for i in indices], description="embed"
        )
        numbered = eval_images(wanted, data_config)
    if view is not None:
        numbered = numbered.map(lambda image, number: (view_image(image, view), number))
    embed = _embedding_function(extractor, data_config.image_size)
    wanted_set = set(indices)
    computed: dict[int, np.ndarray] = {}
    for images, numbers in numbered.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        for number, row in zip(numbers.numpy().tolist(), np.asarray(embed(images), np.float32)):
            if int(number) in wanted_set:
                computed[int(number)] = row
    return computed


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

    The backbone runs once over the un-augmented images not yet cached (a cache hit costs nothing), and over
    each of `train.cache_views` of the training images, every view one more row per image in each epoch; epoch
    e shuffles the rows with `epoch_seed(seed, e)`, so a resumed run sees the same batches.
    """
    cache_dir = feature_cache_dir(config)
    batch = config.train.batch_size
    datasets = []
    for source, views in ((train, [None, *config.train.cache_views]), (val, [None])):
        parts = []
        for view in views:
            key = cache_key(backbone_info, config.data, config.seed, view)
            parts.append(cached_embeddings(extractor, source, config.data, cache_dir, key, batch, view))
        embeddings = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        one_hot = keras.utils.to_categorical(labels, source.num_classes).astype(np.float32)
        datasets.append(tf.data.Dataset.from_tensor_slices((embeddings, one_hot)))
    train_embeddings, val_embeddings = datasets
    rows = int(train_embeddings.cardinality())

    def epoch(e: int) -> tf.data.Dataset:
        shuffled = train_embeddings.shuffle(rows, seed=epoch_seed(config.seed, e), reshuffle_each_iteration=False)
        return shuffled.batch(batch).prefetch(tf.data.AUTOTUNE)

    steps = max(1, math.ceil(rows / batch))
    return EpochData(epoch, steps), val_embeddings.batch(batch).prefetch(tf.data.AUTOTUNE)
