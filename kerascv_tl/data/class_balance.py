"""Class imbalance: per-class loss weights (`train.class_weight`) and balanced sampling (`data.sampling`).

Weights become per-example (segmentation: per-pixel) sample weights inside the tf.data pipeline, so the
datasets yield (x, y, sample_weight) and Keras applies them under every tf.distribute strategy, for images
and for cached embeddings alike; validation data stays unweighted, so the logged metrics stay the plain ones.

* `balanced` weighs class c by n / (n_classes * n_c) (scikit-learn's "balanced"); a class without training
  examples weighs 0 (nothing to weigh) and is named in the log.
* A mapping {class name: weight} matches names case-insensitively; classes left out weigh 1.
* With MixUp or CutMix the weight of a mixed example is the mixed label times the class weights
  (`labels @ weights`), i.e. the same mixture of the two examples' weights as their labels.

Balanced sampling draws each epoch's order from `epoch_seed(seed, epoch)` with numpy alone
(`balanced_order`): every class present is drawn equally often (rare classes repeat, common ones are
subsampled), and an epoch keeps len(source) examples, so a resumed run still sees the batches an
uninterrupted one would (`data.epochs`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from kerascv_tl.config_checks import ConfigError
from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.data.mask_records import IGNORE_INDEX

__all__ = [
    "balanced_cached_data",
    "balanced_order",
    "class_weights",
    "class_weights_from_counts",
    "source_class_weights",
    "with_pixel_weights",
    "imbalance_warning",
    "with_sample_weights",
]

log = logging.getLogger(__name__)

IMBALANCE_WARNING_RATIO = 10.0  # check-data warns when the largest training class is this many times the smallest


def class_weights_from_counts(
    counts: Sequence[int] | np.ndarray, class_names: Sequence[str], spec: str | Mapping[str, float]
) -> np.ndarray | None:
    """float32 [C] weights for `train.class_weight` from per-class counts (examples, or pixels); None for none.

    `balanced`: n / (C * n_c), 0 for a class with no examples (logged). A mapping: by class name, case-
    insensitive; an unknown name raises ConfigError naming it and the known classes; names left out weigh 1.
    """
    names = [str(n) for n in class_names]
    if isinstance(spec, str):
        if spec == "none":
            return None
        if spec != "balanced":
            raise ConfigError(
                f"train.class_weight must be none, balanced or a mapping of class name to weight; got {spec!r}"
            )
        counts = np.asarray(counts, np.float64)
        empty = [name for name, count in zip(names, counts) if count == 0]
        if empty:
            log.warning("train.class_weight balanced: no training examples of %s; they weigh 0", ", ".join(empty))
        weights = np.zeros(len(names), np.float64)
        np.divide(counts.sum(), len(names) * counts, out=weights, where=counts > 0)
        return weights.astype(np.float32)
    by_name = {name.lower(): i for i, name in enumerate(names)}
    unknown = sorted(str(name) for name in spec if str(name).lower() not in by_name)
    if unknown:
        raise ConfigError(f"train.class_weight names unknown class(es) {unknown}; the classes are {names}")
    weights = np.ones(len(names), np.float32)
    for name, weight in spec.items():
        weights[by_name[str(name).lower()]] = float(weight)
    return weights


def class_weights(labels: np.ndarray, class_names: Sequence[str], spec: str | Mapping[str, float]) -> np.ndarray | None:
    """`class_weights_from_counts` with the counts of integer `labels` [N]."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
    return class_weights_from_counts(counts, class_names, spec)


def source_class_weights(source, spec: str | Mapping[str, float]) -> np.ndarray | None:
    """`class_weights` of a classification source; `balanced` needs its labels, which a TFDS split (read
    lazily, `paths` None) does not hold: ConfigError then (a mapping still works)."""
    if spec == "balanced" and source.paths is None:
        raise ConfigError(
            f"train.class_weight: balanced counts the training labels, which {source.description} reads only "
            "while training (TFDS); give a mapping {class name: weight} instead"
        )
    return class_weights(source.labels, source.class_names, spec)


def balanced_order(labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """int64 [N] indices into `labels` for one epoch, every class present drawn equally often.

    Each class present gets N // k draws (k classes; the remainder goes to randomly chosen classes, one
    each): a class with fewer examples repeats whole shuffled passes over them, a larger one is
    subsampled without repetition. A pure function of (seed, epoch)."""
    labels = np.asarray(labels, np.int64)
    rng = np.random.default_rng(epoch_seed(seed, epoch))
    present = np.unique(labels)
    if len(present) == 0:
        return np.zeros([0], np.int64)
    quota = np.full(len(present), len(labels) // len(present), np.int64)
    quota[rng.choice(len(present), len(labels) - int(quota.sum()), replace=False)] += 1
    drawn = []
    for cls, wanted in zip(present, quota):
        members = np.flatnonzero(labels == cls)
        passes = [rng.permutation(members) for _ in range(math.ceil(wanted / len(members)))]
        drawn.append(np.concatenate(passes)[:wanted])
    order = np.concatenate(drawn)
    rng.shuffle(order)
    return order


def with_sample_weights(ds: tf.data.Dataset, weights: np.ndarray) -> tf.data.Dataset:
    """Batches (x, one-hot or mixed labels [B, C]) -> (x, labels, labels @ weights): per-example weights."""
    table = tf.constant(np.asarray(weights, np.float32))
    return ds.map(lambda x, y: (x, y, tf.linalg.matvec(tf.cast(y, tf.float32), table)))


def with_pixel_weights(ds: tf.data.Dataset, weights: np.ndarray) -> tf.data.Dataset:
    """Segmentation batches (images, int masks [B, S, S]) -> (images, masks, float32 per-pixel weights [B, S, S]):
    each pixel weighs its class's weight, IGNORE_INDEX pixels 0 (the loss ignores them as well)."""
    table = np.zeros(max(IGNORE_INDEX + 1, len(weights)), np.float32)
    table[: len(weights)] = weights
    table[IGNORE_INDEX] = 0.0
    lookup = tf.constant(table)
    return ds.map(lambda images, masks: (images, masks, tf.gather(lookup, tf.cast(masks, tf.int32))))


def balanced_cached_data(
    data: EpochData, weights: np.ndarray | None, balanced: bool, seed: int, batch_size: int
) -> EpochData:
    """Cached-embedding epochs ((embedding, one-hot) batches) with class weights and/or balanced sampling.

    Weights alone map each batch. Balanced sampling reads the embeddings once (epoch 0's batches, held in
    memory as the cache itself is) and draws each epoch's order with `balanced_order`."""
    if not balanced:
        if weights is None:
            return data
        return EpochData(lambda epoch: with_sample_weights(data.make(epoch), weights), data.steps)
    batches = list(data.make(0).take(data.steps).as_numpy_iterator())
    embeddings = np.concatenate([b[0] for b in batches])
    one_hot = np.concatenate([b[1] for b in batches])
    labels = np.argmax(one_hot, axis=1)

    def make(epoch: int) -> tf.data.Dataset:
        order = balanced_order(labels, seed, epoch)
        ds = tf.data.Dataset.from_tensor_slices((embeddings[order], one_hot[order])).batch(batch_size)
        if weights is not None:
            ds = with_sample_weights(ds, weights)
        return ds.prefetch(tf.data.AUTOTUNE)

    return EpochData(make, data.steps)


def imbalance_warning(counts: Mapping[str, int], what: str = "examples") -> str | None:
    """A warning line when the largest class count is more than IMBALANCE_WARNING_RATIO times the smallest
    (classes with none count as the smallest); None otherwise."""
    if len(counts) < 2:
        return None
    largest = max(counts, key=lambda name: counts[name])
    smallest = min(counts, key=lambda name: counts[name])
    big, small = counts[largest], counts[smallest]
    if small > 0 and big / small <= IMBALANCE_WARNING_RATIO:
        return None
    return (
        f"class imbalance: {largest!r} has {big} training {what}, {smallest!r} {small}"
        + ("" if small == 0 else f" ({big / small:.1f}:1)")
        + "; consider train.class_weight: balanced or data.sampling: balanced"
    )
