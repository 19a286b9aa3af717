"""Class weights as sample weights, and balanced sampling as a pure function of (seed, epoch)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.config_checks import ConfigError
from kerascv_tl.data.class_balance import (
    balanced_cached_data,
    balanced_order,
    class_weights,
    imbalance_warning,
    source_class_weights,
    with_sample_weights,
)
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.data.pipeline import training_epochs
from kerascv_tl.data.readers import folder_source
from kerascv_tl.data.records import ImageSource

NAMES = ["Cat", "dog", "owl"]


@pytest.fixture
def skewed(tmp_path):
    """9 images of class a, 3 of b: a 3:1 training set."""
    rng = np.random.default_rng(0)
    for name, count in (("a", 9), ("b", 3)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    return folder_source(tmp_path)


def _data(*overrides):
    return load_config(None, ["data.image_size=32", "data.augment.flip=false", *overrides]).data


def test_balanced_weights_are_n_over_classes_times_count_and_an_empty_class_weighs_zero():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(class_weights(labels, NAMES, "balanced"), [8 / (3 * 6), 8 / (3 * 2), 0.0], rtol=1e-6)
    assert class_weights(labels, NAMES, "none") is None


def test_a_mapping_matches_names_case_insensitively_and_others_weigh_one():
    np.testing.assert_array_equal(class_weights(np.array([0, 1]), NAMES, {"cat": 3.0, "OWL": 0.5}), [3.0, 1.0, 0.5])
    with pytest.raises(ConfigError, match=r"\['horse'\].*\['Cat', 'dog', 'owl'\]"):
        class_weights(np.array([0, 1]), NAMES, {"horse": 2.0, "dog": 1.0})


def test_tfds_sources_refuse_balanced_weights_but_take_a_mapping():
    tfds = ImageSource(NAMES, np.zeros(4, np.int32), None, "some_tfds", "train", description="tfds:some_tfds")
    with pytest.raises(ConfigError, match="tfds:some_tfds"):
        source_class_weights(tfds, "balanced")
    np.testing.assert_array_equal(source_class_weights(tfds, {"dog": 2}), [1.0, 2.0, 1.0])
    with pytest.raises(ConfigError, match="data.sampling: balanced"):
        training_epochs(tfds, _data("data.sampling=balanced"), batch_size=2, seed=0)


def test_balanced_order_draws_every_class_equally_often_and_depends_only_on_seed_and_epoch():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    order = balanced_order(labels, seed=3, epoch=0)
    assert len(order) == len(labels)
    counts = np.bincount(labels[order], minlength=3)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 100  # 34/33/33
    # The common class is subsampled without repetition; the rare ones repeat whole passes.
    assert len(set(order[labels[order] == 0].tolist())) == counts[0]
    assert set(order[labels[order] == 1].tolist()) == set(range(90, 99))
    np.testing.assert_array_equal(order, balanced_order(labels, seed=3, epoch=0))
    assert not np.array_equal(order, balanced_order(labels, seed=3, epoch=1))
    assert not np.array_equal(order, balanced_order(labels, seed=4, epoch=0))


def test_imbalance_warning_names_the_classes_past_ten_to_one():
    assert imbalance_warning({"a": 100, "b": 10}) is None
    warning = imbalance_warning({"a": 101, "b": 10, "c": 50})
    assert "'a' has 101" in warning and "'b' 10" in warning and "10.1:1" in warning
    assert "'b' 0" in imbalance_warning({"a": 3, "b": 0})


def test_a_weighted_training_step_differs_from_an_unweighted_one_exactly_as_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]], np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 0], 3).astype(np.float32)
    weights = np.array([0.5, 2.0, 3.0], np.float32)
    kernel = np.array([[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]], np.float32)
    learning_rate = 0.1

    def one_step(weighted: bool):
        model = keras.Sequential([keras.Input([2]), keras.layers.Dense(3, activation="softmax", use_bias=False)])
        model.layers[0].set_weights([kernel])
        model.compile(keras.optimizers.SGD(learning_rate), keras.losses.CategoricalCrossentropy())
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        if weighted:
            ds = with_sample_weights(ds, weights)
        loss = model.fit(ds, epochs=1, verbose=0, shuffle=False).history["loss"][0]
        return loss, model.layers[0].get_weights()[0]

    logits = x @ kernel
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ce = -np.log((p * y).sum(axis=1))
    for weighted in (False, True):
        w = y @ weights if weighted else np.ones(4)
        loss, updated = one_step(weighted)
        np.testing.assert_allclose(loss, np.mean(w * ce), rtol=1e-5)
        gradient = x.T @ ((p - y) * w[:, None]) / len(x)  # softmax cross-entropy: d loss / d logits = p - y
        np.testing.assert_allclose(updated, kernel - learning_rate * gradient, rtol=1e-5, atol=1e-7)


def test_training_batches_carry_each_examples_class_weight(skewed):
    weights = source_class_weights(skewed, "balanced")
    np.testing.assert_allclose(weights, [12 / 18, 12 / 6])
    data = training_epochs(skewed, _data(), batch_size=5, seed=0, class_weights=weights)
    for _, labels, sample_weight in data.make(0):
        np.testing.assert_allclose(sample_weight.numpy(), weights[labels.numpy().argmax(1)])


def test_mixed_examples_weigh_the_same_mixture_of_their_class_weights(skewed):
    weights = np.array([1.0, 4.0], np.float32)
    data = training_epochs(skewed, _data("data.augment.mixup_alpha=0.4"), batch_size=6, seed=0, class_weights=weights)
    _, labels, sample_weight = next(iter(data.make(0)))
    assert np.any((labels.numpy() > 0.01) & (labels.numpy() < 0.99))  # labels really were mixed
    np.testing.assert_allclose(sample_weight.numpy(), labels.numpy() @ weights, rtol=1e-6)


def _labels(dataset) -> list[int]:
    return [int(i) for batch in dataset for i in batch[1].numpy().argmax(1)]


@pytest.mark.slow(seconds=10)
@pytest.mark.parametrize("cache", ["false", "true"])
def test_balanced_epochs_are_balanced_deterministic_and_resume_exactly(skewed, cache):
    data = training_epochs(skewed, _data("data.sampling=balanced", f"data.cache={cache}"), batch_size=4, seed=1)
    epoch0 = _labels(data.make(0))
    assert len(epoch0) == len(skewed) and epoch0.count(0) == epoch0.count(1) == 6
    assert epoch0 == _labels(data.make(0)) and epoch0 != _labels(data.make(1))
    whole = [images.numpy() for images, _ in data.stream(0, 3)]
    resumed = [images.numpy() for images, _ in data.stream(1, 3, skip_steps=2)]
    assert len(resumed) == len(whole) - data.steps - 2
    for a, b in zip(whole[data.steps + 2 :], resumed):
        np.testing.assert_array_equal(a, b)


def test_cached_embeddings_get_weights_and_balanced_epochs():
    embeddings = np.arange(20, dtype=np.float32).reshape(10, 2)
    one_hot = keras.utils.to_categorical([0] * 8 + [1] * 2, 2).astype(np.float32)
    base = tf.data.Dataset.from_tensor_slices((embeddings, one_hot))
    cached = EpochData(lambda e: base.shuffle(10, seed=e, reshuffle_each_iteration=False).batch(4), steps=3)
    weighted = balanced_cached_data(cached, np.array([1.0, 4.0]), False, seed=0, batch_size=4)
    for _, y, w in weighted.make(0):
        np.testing.assert_allclose(w.numpy(), y.numpy() @ [1.0, 4.0])
    balanced = balanced_cached_data(cached, None, True, seed=0, batch_size=4)
    epoch0 = [(tuple(e), int(y.argmax())) for x, ys in balanced.make(0) for e, y in zip(x.numpy(), ys.numpy())]
    assert len(epoch0) == 10 and sum(y for _, y in epoch0) == 5
    assert all((e[0] >= 16) == (y == 1) for e, y in epoch0)  # rows 8 and 9 (class 1) keep their label
    resumed = [x.numpy() for x, _ in balanced.stream(1, 2, skip_steps=1)]
    whole = [x.numpy() for x, _ in balanced.stream(0, 2)]
    assert len(resumed) == 2
    for a, b in zip(whole[4:], resumed):
        np.testing.assert_array_equal(a, b)
