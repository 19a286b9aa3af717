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
    assert loaded.use_prediction_head_norm  # the GroupNorm heads come back
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


def test_anchor_aspect_ratios_set_the_anchors_and_survive_saving(tmp_path):
    keras.utils.set_random_seed(0)
    tall = detector("mobilenet_v2", num_classes=1, weights="none", image_size=SIZE, anchor_aspect_ratios=[2.0, 3.0])
    anchors = keras.ops.convert_to_numpy(
        keras.ops.concatenate(list(tall.anchor_generator(np.zeros((1, SIZE, SIZE, 3), "float32")).values()), 0)
    )
    heights, widths = anchors[:, 3] - anchors[:, 1], anchors[:, 2] - anchors[:, 0]
    # 2 ratios x 3 scales per location on levels 3..7 (8x8, 4x4, 2x2, 1x1, 1x1 cells at 64 px)
    assert len(anchors) == (64 + 16 + 4 + 1 + 1) * 6
    ratios = heights / widths  # corners rounded to whole pixels: within 5% of 2 or 3, both present
    near_2, near_3 = np.abs(ratios / 2.0 - 1) < 0.05, np.abs(ratios / 3.0 - 1) < 0.05
    assert (near_2 | near_3).all() and near_2.sum() == near_3.sum()
    x = np.zeros((1, SIZE, SIZE, 3), "float32")
    assert tall(x)["bbox_regression"].shape == (1, len(anchors), 4)
    path = tmp_path / "tall.keras"
    tall.save(path)
    assert keras.saving.load_model(path).anchor_generator.aspect_ratios == [2.0, 3.0]


def test_smooth_l1_box_loss_has_slope_one_beyond_beta_where_keras_hub_huber_has_the_error(model):
    from kerascv_tl.config import load_config
    from kerascv_tl.tasks.detection import SMOOTH_L1_BETA, compile_detector

    x, y = _batch()
    targets, labels = model.label_encoder(images=x, gt_boxes=y["boxes"], gt_classes=y["labels"])
    targets, labels = keras.ops.convert_to_numpy(targets), keras.ops.convert_to_numpy(labels)
    positive = labels > -1
    assert positive.any()
    rng = np.random.default_rng(0)
    box_pred = targets + rng.uniform(-1.5, 1.5, targets.shape).astype("float32")
    y_pred = {
        "bbox_regression": box_pred,
        "cls_logits": rng.normal(0, 1, (*labels.shape, 2)).astype("float32"),
    }
    error = np.abs(box_pred - targets)[positive]
    normaliser = positive.sum()
    huber_1 = np.where(error < 1.0, 0.5 * error**2, error - 0.5).mean(-1).sum() / normaliser
    b = SMOOTH_L1_BETA
    smooth_l1 = np.where(error < b, 0.5 * error**2 / b, error - 0.5 * b).mean(-1).sum() / normaliser
    train = load_config(None).train
    totals = {}
    for name in ("smooth_l1", "huber"):
        compile_detector(model, train, 1e-3, False, box_loss=name)
        totals[name] = float(model.compute_loss(x, y, y_pred, None))  # the same focal loss in both
    np.testing.assert_allclose(totals["smooth_l1"] - totals["huber"], smooth_l1 - huber_1, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown box loss"):
        compile_detector(model, train, 1e-3, False, box_loss="l2")


def test_group_norm_heads_by_default_and_keras_hub_plain_heads_on_request(model):
    # The module's `model` (built with the defaults) is the one the fit / save / load test above trains and reloads.
    norms = model.box_head.group_norm_layers + model.classification_head.group_norm_layers
    assert len(norms) == 8 and all(isinstance(n, keras.layers.GroupNormalization) for n in norms)  # 4 convs x 2
    assert model.use_prediction_head_norm
    plain = detector("mobilenet_v2", num_classes=2, weights="none", image_size=SIZE, group_norm=False)
    assert plain.box_head.group_norm_layers == [] and not plain.use_prediction_head_norm  # KerasHub's default
