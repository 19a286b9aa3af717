"""One backbone's figures: cached embeddings, a linear probe on them, throughput and batch-1 latency.

The probe is a softmax layer on standardised embeddings, trained with Adam for a fixed number of epochs and
scored once at the end on the validation embeddings (no early stopping or model selection on them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.evaluation.classification import classification_metrics
from kerascv_tl.tasks.classifier import classifier, feature_extractor
from kerascv_tl.training.feature_cache import cache_key, cached_embeddings, read_cache

if TYPE_CHECKING:
    from kerascv_tl.backbones import Backbone
    from kerascv_tl.config import RecipeConfig


@dataclass
class ProbeSettings:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    latency_runs: int = 20
    latency_warmup: int = 3


def probe_backbone(
    backbone: Backbone, train, val, config: RecipeConfig, cache_dir: str | Path, settings: ProbeSettings
) -> dict:
    """{params, embedding_dim, accuracy, macro_f1, images_per_s, images_per_s_from, latency_ms}."""
    model = classifier(backbone, num_classes=train.num_classes, dropout=0.0)
    extractor = feature_extractor(model)
    key = cache_key(backbone.info(), config.data, config.seed)
    arrays, computed, seconds = [], 0, 0.0
    for source in (train, val):
        before = len(read_cache(cache_dir, key))
        started = time.perf_counter()
        arrays.append(cached_embeddings(extractor, source, config.data, cache_dir, key))
        embedded = len(read_cache(cache_dir, key)) - before  # the images this call ran the backbone over
        if embedded:
            computed += embedded
            seconds += time.perf_counter() - started
    (train_x, train_y), (val_x, val_y) = arrays
    if computed:
        throughput, origin = computed / seconds, f"extraction of {computed} images"
    else:
        throughput, origin = _timed_batch(extractor, val, config, settings.batch_size), "timed batch (cache hit)"
    probabilities = linear_probe(train_x, train_y, val_x, train.num_classes, config.seed, settings)
    metrics = classification_metrics(val_y, probabilities, train.class_names)
    return {
        "params": int(backbone.model.count_params()),
        "embedding_dim": int(train_x.shape[1]),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "images_per_s": round(throughput, 2),
        "images_per_s_from": origin,
        "latency_ms": round(batch1_latency_ms(extractor, config.data.image_size, settings), 2),
    }


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, num_classes: int, seed: int, settings: ProbeSettings
) -> np.ndarray:
    """Validation class probabilities [N, C] of a softmax layer trained on the standardised training embeddings."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    keras.utils.set_random_seed(seed)
    probe = keras.Sequential([keras.Input((train_x.shape[1],)), keras.layers.Dense(num_classes, activation="softmax")])
    probe.compile(keras.optimizers.Adam(settings.learning_rate), "sparse_categorical_crossentropy")
    probe.fit(
        (train_x - mean) / std,
        train_y,
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        shuffle=True,
        verbose=0,
    )
    return np.asarray(probe.predict((val_x - mean) / std, batch_size=256, verbose=0), np.float64)


def batch1_latency_ms(extractor: keras.Model, image_size: int, settings: ProbeSettings) -> float:
    """Median milliseconds of one image through the traced extractor, after warm-up runs (pixels to embedding,
    this machine, no data loading)."""
    run = tf.function(
        lambda images: extractor(images, training=False),
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32)],
    )
    image = tf.random.stateless_uniform([1, image_size, image_size, 3], seed=(0, 0), maxval=255.0)
    for _ in range(max(1, settings.latency_warmup)):
        run(image).numpy()
    times = []
    for _ in range(max(1, settings.latency_runs)):
        started = time.perf_counter()
        run(image).numpy()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def _timed_batch(extractor: keras.Model, source, config: RecipeConfig, batch_size: int) -> float:
    """Images per second of one decoded batch through the extractor (after a warm-up call on it): the figure a
    cache hit did not measure. Excludes decoding, unlike a real extraction."""
    images, _ = next(iter(eval_dataset(source, config.data, batch_size)))
    extractor(images, training=False)
    started = time.perf_counter()
    np.asarray(extractor(images, training=False))
    return int(images.shape[0]) / (time.perf_counter() - started)
