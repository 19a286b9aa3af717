import keras
import numpy as np
import pytest

from kerascv_tl.backbones import build_backbone
from kerascv_tl.backbones.pyramid import PyramidEncoder, pyramid_encoder
from kerascv_tl.data.mask_records import IGNORE_INDEX
from kerascv_tl.tasks import freeze_backbone, get_backbone, unfreeze_backbone
from kerascv_tl.tasks.segmenter import mean_iou_metric, segmentation_loss, segmenter

SIZE = 64


def _batch(num_classes=3):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    y = np.zeros((2, SIZE, SIZE), "int32")
    y[:, 16:48, 16:48] = 1
    y[1, :8] = num_classes - 1
    y[:, :, :4] = IGNORE_INDEX
    return x, y


def test_ignored_pixels_count_for_nothing_in_the_loss():
    logits = np.random.default_rng(1).normal(size=(1, 4, 4, 3)).astype("float32")
    labels = np.full((1, 4, 4), IGNORE_INDEX, "int32")
    labels[0, 1, 2] = 2
    only_pixel = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels[:, 1:2, 2:3], logits[:, 1:2, 2:3])
    np.testing.assert_allclose(float(segmentation_loss()(labels, logits)), float(only_pixel), rtol=1e-5)


@pytest.mark.parametrize(
    "name, architecture, kind, learning_rate",
    [("mobilenet_v2", "auto", "DeepLabV3ImageSegmenter", 1e-3), ("mit_b0", "auto", "SegFormerImageSegmenter", 1e-4)],
)
def test_segmenter_fits_predicts_saves_and_loads(name, architecture, kind, learning_rate, tmp_path):
    keras.utils.set_random_seed(0)
    model = segmenter(name, 3, weights="none", image_size=SIZE, architecture=architecture)
    assert type(model).__name__ == kind
    assert model.input_shape == (None, SIZE, SIZE, 3) and model.output_shape == (None, SIZE, SIZE, 3)
    x, y = _batch()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=segmentation_loss(),
        metrics=[mean_iou_metric(3)],
        run_eagerly=True,
    )
    history = model.fit(x, y, epochs=3, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    assert 0.0 <= history["mean_iou"][-1] <= 1.0
    logits = model.predict(x, verbose=0)
    path = tmp_path / "segmenter.keras"
    model.save(path)
    again = keras.saving.load_model(path, compile=False, safe_mode=True).predict(x, verbose=0)
    np.testing.assert_allclose(again, logits, atol=1e-4)


def test_deeplab_taps_strides_4_and_16_and_freezing_reaches_the_backbone_only():
    model = segmenter("mobilenet_v2", 2, weights="none", image_size=SIZE, architecture="deeplabv3")
    encoder = model.backbone.image_encoder
    assert isinstance(encoder, PyramidEncoder)
    assert {k: tuple(v.shape[1:3]) for k, v in encoder.pyramid_outputs.items()} == {"P2": (16, 16), "P4": (4, 4)}
    features = get_backbone(model)
    # The deepest stride-16 layer is block 13's expansion, before its stride-2 depthwise conv: the
    # stride-32 layers above it are not part of the model (they would get no gradients).
    assert features.name == "features" and features.layers[-1].name == "block_13_expand_relu"
    assert not any(w.path.startswith("block_16") for w in model.weights)
    freeze_backbone(model)
    assert not features.trainable_weights and model.trainable_weights  # the new decoder still trains
    assert unfreeze_backbone(model, top_blocks=1) == ["block_13"]


def test_segformer_head_on_a_conv_backbone_reads_levels_p1_to_p4():
    model = segmenter("mobilenet_v2", 2, weights="none", image_size=SIZE, architecture="segformer")
    encoder = model.backbone.image_encoder
    assert list(encoder.pyramid_outputs) == ["P1", "P2", "P3", "P4"]
    # The deepest MobileNetV2 layers at strides 4, 8 and 16 are block expansions (block_3/6/13_expand_relu).
    assert encoder.hidden_dims == [144, 192, 576, 1280]
    assert model.output_shape == (None, SIZE, SIZE, 2)


def test_pyramid_encoder_round_trips_its_level_offset():
    backbone = build_backbone("mit_b0", weights="none", image_size=SIZE)
    encoder = pyramid_encoder(backbone, strides=(4, 8, 16, 32), level_offset=1)
    # MiT's own pyramid_outputs name the taps; strides are measured, not read from the level keys.
    assert backbone.pyramid_layers_at((4, 32)) == {4: "output_level_0", 32: "output_level_3"}
    clone = PyramidEncoder.from_config(encoder.get_config())
    assert list(clone.pyramid_outputs) == ["P1", "P2", "P3", "P4"] and clone.hidden_dims == [32, 64, 160, 256]


def test_fewer_than_two_classes_and_unknown_architecture_are_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        segmenter("mobilenet_v2", 1, weights="none", image_size=SIZE)
    with pytest.raises(ValueError, match="unknown segmentation architecture 'unet'"):
        segmenter("mobilenet_v2", 2, weights="none", image_size=SIZE, architecture="unet")
    with pytest.raises(ValueError, match="single feature scale"):
        segmenter("vit_tiny16", 2, weights="none", image_size=32)
