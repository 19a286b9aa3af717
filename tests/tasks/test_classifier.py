"""The classifier task model: build, train a step, evaluate, .keras round trip, shared sub-models."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import kerascv_tl
from kerascv_tl.backbones import Backbone, Preprocessing, build_backbone
from kerascv_tl.tasks import classifier, feature_extractor, head_model
from kerascv_tl.tasks.classifier import ClassTokenPooling

NUM_CLASSES = 3


def _data(size: int, n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % NUM_CLASSES, NUM_CLASSES)
    return x, y


def _run(model: keras.Model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def _compile(model: keras.Model) -> None:
    # Eager: tracing a graph train step of a whole backbone costs ~15 s on 2 CPU cores, one step ~2 s.
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"], run_eagerly=True
    )


@pytest.mark.parametrize(
    "name, size, backbone_type",
    [("mobilenet_v2", 64, "Functional"), ("vit_tiny16", 32, "ViTBackbone")],
)
def test_train_evaluate_save_load(tmp_path, name, size, backbone_type):
    model = classifier(name, NUM_CLASSES, weights=None, image_size=size)
    assert [layer.name for layer in model.layers] == [
        "images",
        "preprocessing",
        "backbone",
        "pool",
        "dropout",
        "predictions",
    ]
    assert type(model.get_layer("backbone")).__name__ == backbone_type
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, NUM_CLASSES)
    if name == "vit_tiny16":
        assert isinstance(model.get_layer("pool"), ClassTokenPooling)
        # ViT's registry preprocessing scales [0, 255] to [-1, 1].
        pre = model.get_layer("preprocessing")
        np.testing.assert_allclose(
            _run(keras.Sequential([pre]), np.array([[[[0.0, 127.5, 255.0]]]], "float32")), [[[[-1, 0, 1]]]], atol=1e-6
        )

    x, y = _data(size)
    _compile(model)
    # The bias gradient is mean(p - y) whatever the (random-init, near-zero) embeddings are.
    bias_before = model.get_layer("predictions").bias.numpy().copy()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.optimizer.iterations.numpy()) == 1
    assert np.abs(model.get_layer("predictions").bias.numpy() - bias_before).max() > 1e-4
    loss, accuracy = model.evaluate(x, y, batch_size=4, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0

    probabilities = _run(model, x)
    assert probabilities.shape == (4, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("backbone")).__name__ == backbone_type
    np.testing.assert_allclose(_run(loaded, x), probabilities, rtol=0, atol=1e-6)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The optimizer state came back too, so training can resume.
    assert int(loaded.optimizer.iterations.numpy()) == 1


def test_feature_extractor_and_head_share_the_classifier_layers():
    model = kerascv_tl.classifier("mobilenet_v2", NUM_CLASSES, weights=None, image_size=64, dropout=0.5)
    features = feature_extractor(model)
    head = head_model(model)
    assert features.output_shape == (None, 1280)
    assert head.input_shape == (None, 1280) and head.output_shape == (None, NUM_CLASSES)
    assert features.get_layer("backbone") is model.get_layer("backbone")
    assert features.get_layer("preprocessing") is model.get_layer("preprocessing")
    assert head.get_layer("predictions") is model.get_layer("predictions")
    assert head.get_layer("dropout") is model.get_layer("dropout")

    x, _ = _data(64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bare image batch matches the extractor's input structure
        embeddings = _run(features, x)
    np.testing.assert_allclose(_run(head, embeddings), _run(model, x), atol=1e-6)

    # Training the head on cached embeddings trains the classifier in place.
    kernel = model.get_layer("predictions").kernel
    before_kernel = kernel.numpy().copy()
    before_probabilities = _run(model, x)
    head.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy", run_eagerly=True)
    labels = keras.utils.to_categorical([0, 1, 2, 0], NUM_CLASSES)
    # A random-init backbone's embeddings are tiny; train on unit-scale stand-ins for cached features.
    cached = np.random.default_rng(1).normal(size=embeddings.shape).astype("float32")
    head.fit(cached, labels, batch_size=4, epochs=1, verbose=0)
    assert head.get_layer("predictions").kernel is kernel
    assert not np.allclose(kernel.numpy(), before_kernel)
    assert not np.allclose(_run(model, x), before_probabilities)
    np.testing.assert_allclose(_run(head, _run(features, x)), _run(model, x), atol=1e-6)


def test_classifier_on_a_built_backbone():
    backbone = build_backbone("mobilenet_v3_small", weights=None, image_size=64)
    backbone.preprocessing = Preprocessing.keras_mode("torch")
    model = classifier(backbone, 2)
    assert model.get_layer("backbone") is backbone.model
    assert model.get_layer("preprocessing").mean == Preprocessing.keras_mode("torch").mean
    assert model.output_shape == (None, 2)
    assert model.name == "mobilenet_v3_small_classifier"
    assert isinstance(backbone, Backbone)


@pytest.mark.parametrize("num_classes", [1, 0, -3])
def test_fewer_than_two_classes_raise(num_classes):
    with pytest.raises(ValueError, match="at least 2 classes"):
        classifier("mobilenet_v2", num_classes, weights=None, image_size=64)
