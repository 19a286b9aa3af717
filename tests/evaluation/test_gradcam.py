"""Grad-CAM: the heat lies on the class evidence; ViT maps sit on the patch grid; any precision policy."""

import keras
import numpy as np
import pytest

from kerascv_tl.backbones import Backbone, Preprocessing
from kerascv_tl.evaluation.explain import overlay_heatmap
from kerascv_tl.evaluation.gradcam import gradcam, gradcam_for
from kerascv_tl.tasks.classifier import classifier

SIZE, SQUARE = 64, 10


def _tiny_conv_backbone(size=SIZE) -> Backbone:
    """Three stride-2 convolutions: an 8 x 8 feature map at 64 px, BatchNorm included (inference mode matters)."""
    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (16, 32, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization(momentum=0.8)(x)  # moving statistics settle within a few epochs
        x = keras.layers.ReLU()(x)
    model = keras.Model(inputs, x)
    return Backbone(model, "tiny_conv", size, Preprocessing.keras_mode("tf"), "avg", {"kind": "random"})


def _squares(rng, count, corners):
    """Dim noise images with a bright square whose top-left corner is at each of `corners` (None: no square)."""
    images = rng.uniform(0, 60, (count, SIZE, SIZE, 3)).astype(np.float32)
    for image, corner in zip(images, corners):
        if corner is not None:
            y, x = corner
            image[y : y + SQUARE, x : x + SQUARE] = 255.0
    return images


def _quadrant_masses(heat: np.ndarray) -> np.ndarray:
    """Share of the heat in the top-left, top-right, bottom-left, bottom-right quarters of each map."""
    h, w = heat.shape[1] // 2, heat.shape[2] // 2
    parts = [heat[:, :h, :w], heat[:, :h, w:], heat[:, h:, :w], heat[:, h:, w:]]
    masses = np.stack([p.sum(axis=(1, 2)) for p in parts], axis=1)
    return masses / masses.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def square_detector():
    """A classifier() on a tiny conv backbone trained so that class 1 = a bright square anywhere, class 0 = none."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    count = 256
    has_square = rng.random(count) < 0.5
    corners = [tuple(rng.integers(0, SIZE - SQUARE, 2)) if s else None for s in has_square]
    images = _squares(rng, count, corners)
    labels = keras.utils.to_categorical(has_square.astype(int), 2)
    model = classifier(_tiny_conv_backbone(), 2, dropout=0.0)
    model.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=32, epochs=6, verbose=0)
    return model


def test_the_heat_lies_in_the_quadrant_holding_the_evidence(square_detector):
    rng = np.random.default_rng(1)
    # One square well inside each quadrant: top-left, top-right, bottom-left, bottom-right.
    corners = [(8, 8), (8, 44), (44, 8), (44, 44)]
    images = _squares(rng, 4, corners)
    probabilities = square_detector.predict_on_batch(images)
    assert (probabilities[:, 1] > 0.7).all(), probabilities

    heat = gradcam(square_detector, images, [1, 1, 1, 1])
    assert heat.shape == (4, 8, 8) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and np.allclose(heat.max(axis=(1, 2)), 1.0)
    masses = _quadrant_masses(heat)
    for quadrant in range(4):
        assert masses[quadrant].argmax() == quadrant, masses
        assert masses[quadrant, quadrant] > 0.5, masses
        peak = np.unravel_index(heat[quadrant].argmax(), heat.shape[1:])
        assert (peak[0] >= 4, peak[1] >= 4) == (quadrant >= 2, quadrant % 2 == 1), (quadrant, peak)


def test_maps_follow_the_requested_class(square_detector):
    """For "no square" the evidence is everything but the square: the square's quadrant gets the least heat."""
    images = _squares(np.random.default_rng(2), 1, [(8, 8)])
    heat = gradcam(square_detector, images, [0])
    masses = _quadrant_masses(heat)[0]
    assert masses.argmin() == 0, masses


def test_vit_maps_lie_on_the_patch_grid_and_survive_saving(tmp_path):
    import keras_hub

    keras.utils.set_random_seed(0)
    vit = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    backbone = Backbone(vit, "tiny_vit", 32, Preprocessing.keras_mode("tf"), "token", {"kind": "random"}, ())
    model = classifier(backbone, 3)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    cam = gradcam_for(model)
    assert "ViT patch tokens" in cam.layer and "4x4" in cam.layer
    heat = cam.maps(images, [0, 1, 2])
    assert heat.shape == (3, 4, 4) and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and np.allclose(heat.max(axis=(1, 2)), 1.0)

    # `kerascv-tl evaluate` explains the model as loaded from the run folder.
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(gradcam(reloaded, images, [0, 1, 2]), heat, atol=1e-5)


def test_mixed_precision_models_give_float32_maps():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = classifier(_tiny_conv_backbone(32), 3)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.get_layer("backbone").compute_dtype == "float16"
    heat = gradcam(model, np.full((2, 32, 32, 3), 128, np.uint8), [0, 2])
    assert heat.dtype == np.float32 and heat.shape == (2, 4, 4) and np.isfinite(heat).all()


def test_models_other_than_classifiers_are_refused():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="kerascv_tl classifier"):
        gradcam_for(model)


def test_overlay_blends_the_colour_mapped_heat_over_the_image():
    image = np.full((16, 16, 3), 200, np.uint8)
    heat = np.zeros((2, 2), np.float32)
    heat[0, 0] = 1.0
    overlay = overlay_heatmap(image, heat, alpha=0.5)
    assert overlay.shape == (16, 16, 3) and overlay.dtype == np.uint8
    # jet: hot is red, cold is blue.
    assert overlay[0, 0, 0] > overlay[0, 0, 2] and overlay[15, 15, 2] > overlay[15, 15, 0]
    np.testing.assert_array_equal(overlay_heatmap(image, heat, alpha=0.0), image)
