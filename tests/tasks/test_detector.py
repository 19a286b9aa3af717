import keras
import numpy as np
import pytest

from kerascv_tl.backbones import build_backbone
from kerascv_tl.backbones.pyramid import PyramidEncoder, pyramid_encoder
from kerascv_tl.tasks import detector, freeze_backbone, get_backbone, unfreeze_backbone

SIZE = 64


def _batch():
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    y = {
        "boxes": np.array([[[4, 4, 30, 40], [0, 0, 0, 0]], [[10, 20, 60, 60], [2, 2, 20, 20]]], "float32"),
        "labels": np.array([[0, -1], [1, 0]], "int32"),
    }
    return x, y


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return detector("mobilenet_v2", num_classes=2, weights="none", image_size=SIZE)


def test_pyramid_encoder_exposes_p3_p4_p5_at_their_strides():
    encoder = pyramid_encoder(build_backbone("resnet50", weights="none", image_size=SIZE))
    assert {k: tuple(v.shape[1:3]) for k, v in encoder.pyramid_outputs.items()} == {
        "P3": (SIZE // 8, SIZE // 8),
        "P4": (SIZE // 16, SIZE // 16),
        "P5": (SIZE // 32, SIZE // 32),
    }
    assert encoder.get_layer("preprocessing").channel_order == "BGR"  # ResNet's caffe normalisation inside
    clone = PyramidEncoder.from_config(encoder.get_config())
    clone.set_weights(encoder.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    for level, value in encoder(x).items():
        np.testing.assert_allclose(clone(x)[level], value, atol=1e-5)


def test_vit_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="single feature scale"):
        pyramid_encoder(build_backbone("vit_tiny16", weights="none", image_size=32))


def test_detector_fits_predicts_saves_and_loads(model, tmp_path):
    x, y = _batch()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    losses = model.fit(x, y, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    predictions = model.predict(x, verbose=0)
    assert predictions["boxes"].shape == (2, 100, 4) and predictions["num_detections"].shape == (2,)
    path = tmp_path / "detector.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.predict(x, verbose=0)
    for key in ("boxes", "confidence", "labels"):
        np.testing.assert_allclose(again[key], predictions[key], atol=1e-5)


def test_freeze_helpers_reach_the_tapped_backbone_only(model):
    features = get_backbone(model)
    assert features.name == "features" and features.get_layer("block_16_project") is not None
    freeze_backbone(model)
    assert not any(w.trainable for w in features.weights)
    assert model.backbone.feature_pyramid.trainable_weights  # the new FPN still trains
    assert unfreeze_backbone(model, top_blocks=1) == ["block_16"]
    trainable = {w.path.split("/")[0] for w in features.trainable_weights}
    assert trainable and all(name.startswith(("block_16", "Conv_1")) for name in trainable)
    assert not any(isinstance(l, keras.layers.BatchNormalization) and l.trainable for l in features.layers)


def test_keras_hub_resnet_detector_trains_saves_and_freezes(tmp_path):
    keras.utils.set_random_seed(0)
    model = detector("hub_resnet18", num_classes=2, weights="none", image_size=SIZE)
    assert model.backbone.image_encoder.get_layer("preprocessing").mean == (0.485, 0.456, 0.406)
    x, y = _batch()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    losses = model.fit(x, y, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    predictions = model.predict(x, verbose=0)
    path = tmp_path / "hub_resnet_detector.keras"
    model.save(path)
    again = keras.saving.load_model(path).predict(x, verbose=0)
    np.testing.assert_allclose(again["boxes"], predictions["boxes"], atol=1e-4)

    freeze_backbone(model)
    assert not get_backbone(model).trainable_weights
    assert unfreeze_backbone(model, top_blocks=2) == ["stack3_block0", "stack3_block1"]
    trainable = {w.path.split("/")[0] for w in get_backbone(model).trainable_weights}
    assert trainable and all(name.startswith("stack3_") for name in trainable)
