"""Whole task presets as starting points: local preset folders written with KerasHub's `save_to_preset`, loaded with a
different class list; kept layers and matched class rows must reproduce the preset's outputs exactly."""

import json

import keras
import numpy as np
import pytest

from kerascv_tl.config import ConfigError, load_config
from kerascv_tl.tasks.freeze import unfreeze_all
from kerascv_tl.tasks.preset_classes import STANDARD_CLASS_LISTS, PresetError, match_classes, preset_class_names
from kerascv_tl.tasks.presets import class_layer, class_rows, freeze_for_head_phase, start_from_preset

SIZE = 64


def _config(preset, task="detection", *extra):
    return load_config(None, [f"task={task}", f"data.image_size={SIZE}", f"model.preset={preset}", *extra])


def _pixels(seed=0, count=2):
    return np.random.default_rng(seed).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")


def _distinct_class_bias(model):
    """Class-layer biases start at zero: give each class its own so that copied rows are told apart."""
    layer = class_layer(model)
    if getattr(layer, "bias", None) is not None:
        layer.bias.assign(np.linspace(-2.0, 2.0, int(layer.bias.shape[0])).astype("float32"))


def _save(model, folder, class_names=None):
    model.save_to_preset(str(folder))
    if class_names is not None:
        meta = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps({**meta, "class_names": class_names}))
    return folder


def _tiny_hub_resnet():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16, 16, 16],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )


@pytest.fixture(scope="module")
def detector_preset(tmp_path_factory):
    """kerascv-tl's own detector (what `export --format preset` writes), classes named in its metadata."""
    from kerascv_tl.tasks.detector import detector

    keras.utils.set_random_seed(1)
    model = detector("mobilenet_v3_small", 3, weights="none", image_size=SIZE)
    _distinct_class_bias(model)
    return model, _save(model, tmp_path_factory.mktemp("det") / "preset", ["triangle", "Circle", "boat"])


def test_class_rows_copy_each_anchor_block_of_matched_classes():
    old = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3 * 4)  # 3 anchors x 4 classes
    new = np.full((2, 3 * 2), -1.0, "float32")  # 3 anchors x 2 classes
    result = class_rows(old, new, 4, 2, [(1, 3)]).reshape(2, 3, 2)
    np.testing.assert_array_equal(result[..., 1], old.reshape(2, 3, 4)[..., 3])
    np.testing.assert_array_equal(result[..., 0], -1.0)


def test_class_names_match_case_and_separators_and_follow_the_map():
    preset = STANDARD_CLASS_LISTS["coco91"]
    pairs = match_classes(["Background", "traffic_light", "pedestrian", "unicorn"], preset, {"pedestrian": "person"})
    assert pairs == [(0, 0), (1, preset.index("traffic light")), (2, preset.index("person"))]
    with pytest.raises(PresetError, match="not a preset class"):
        match_classes(["pedestrian"], preset, {"pedestrian": "walker"})
    with pytest.raises(PresetError, match="classes the data does not have: cyclist"):
        match_classes(["pedestrian"], preset, {"cyclist": "bicycle"})
    assert len(STANDARD_CLASS_LISTS["coco80"]) == 80 and STANDARD_CLASS_LISTS["voc21"][15] == "person"


def test_preset_class_list_must_fit_the_preset(tmp_path):
    with pytest.raises(PresetError, match="lists 21 classes but preset .* predicts 91"):
        preset_class_names("voc21", str(tmp_path), 91)
    names, _ = preset_class_names("imagenet1k", str(tmp_path), 1000)
    assert match_classes(["Goldfish", "toilet tissue"], names, {}) == [(0, 1), (1, 999)]
    names, where = preset_class_names(None, str(tmp_path), 3)
    assert names is None and "names no classes" in where


@pytest.mark.slow(seconds=25)
def test_detector_preset_keeps_its_layers_and_matched_rows(detector_preset):
    source, folder = detector_preset
    model, backbone, start = start_from_preset(_config(folder), "ObjectDetector", ["circle", "square", "triangle"])
    assert start.matched == {"circle": "Circle", "triangle": "triangle"} and start.fresh == ["square"]
    assert type(model).__name__ == "RetinaNetDetector" and backbone.image_size == SIZE
    x = _pixels()
    expected = {k: np.asarray(v) for k, v in source(x).items()}
    got = {k: np.asarray(v) for k, v in model(x).items()}
    np.testing.assert_allclose(got["bbox_regression"], expected["bbox_regression"], atol=1e-5)
    np.testing.assert_allclose(got["cls_logits"][..., [0, 2]], expected["cls_logits"][..., [1, 0]], atol=1e-5)
    assert np.abs(got["cls_logits"][..., 1] - expected["cls_logits"][..., 2]).max() > 1e-2  # square starts fresh
    for kept, original in zip(model.box_head.weights, source.box_head.weights):
        np.testing.assert_array_equal(kept, original)

    everything = {id(w) for w in model.trainable_weights}
    freeze_for_head_phase(model, start)
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in class_layer(model).weights}
    start.train_heads = True
    freeze_for_head_phase(model, start)
    trainable = {id(w) for w in model.trainable_weights}
    assert {id(w) for w in model.box_head.weights} <= trainable
    assert not trainable & {id(w) for w in model.backbone.image_encoder.weights}
    unfreeze_all(model)  # what the fine-tune phase starts from: every layer but BatchNorm trains again
    after = {id(w) for w in model.trainable_weights}
    assert after <= everything and all("_bn/" in w.path for w in model.weights if id(w) in everything - after)
    # 4 conv kernels (no bias before GroupNorm), 4 GroupNorm gammas and betas, the output conv's kernel and bias
    assert len(model.box_head.trainable_weights) == len(model.box_head.weights) == len(source.box_head.weights) == 14

    with pytest.raises(PresetError, match="takes 64x64 images; set data.image_size: 64"):
        start_from_preset(_config(folder, "detection", "data.image_size=96"), "ObjectDetector", ["circle"])


@pytest.mark.slow(seconds=20)
def test_keras_hub_detector_preset_gets_its_normalisation_inside(tmp_path):
    """A KerasHub-only RetinaNet normalises in its preprocessor; the rebuilt task takes [0, 255] pixels itself."""
    import keras_hub

    keras.utils.set_random_seed(2)
    neck = keras_hub.models.RetinaNetBackbone(
        image_encoder=_tiny_hub_resnet(), min_level=3, max_level=7, use_p5=False, image_shape=(None, None, 3)
    )
    converter = keras_hub.layers.ResNetImageConverter(scale=1 / 127.5, offset=-1.0)
    source = keras_hub.models.RetinaNetObjectDetector(
        backbone=neck,
        num_classes=2,
        bounding_box_format="yxyx",
        preprocessor=keras_hub.models.RetinaNetObjectDetectorPreprocessor(image_converter=converter),
    )
    _distinct_class_bias(source)
    folder = _save(source, tmp_path / "hub_retinanet")
    # KerasHub's own loader still finds its own class with kerascv-tl's RetinaNetDetector registered beside it.
    assert type(keras_hub.models.ObjectDetector.from_preset(str(folder))) is keras_hub.models.RetinaNetObjectDetector
    config = _config(folder, "detection", "model.preset_classes=cat,dog")
    model, backbone, start = start_from_preset(config, "ObjectDetector", ["dog", "cat"])
    assert model.bounding_box_format == "xyxy" and start.matched == {"dog": "dog", "cat": "cat"}
    assert backbone.preprocessing.mean == pytest.approx((127.5,) * 3)
    x = _pixels(3)
    expected = {k: np.asarray(v) for k, v in source(x / 127.5 - 1.0).items()}
    got = {k: np.asarray(v) for k, v in model(x).items()}
    np.testing.assert_allclose(got["bbox_regression"], expected["bbox_regression"], atol=1e-4)
    np.testing.assert_allclose(got["cls_logits"], expected["cls_logits"][..., ::-1], atol=1e-4)


@pytest.mark.slow(seconds=25)
def test_segmenter_presets_keep_decoder_and_matched_classes(tmp_path):
    import keras_hub

    from kerascv_tl.tasks.segmenter import segmenter

    keras.utils.set_random_seed(3)
    ours = segmenter("mobilenet_v3_small", 2, weights="none", image_size=SIZE, architecture="deeplabv3")
    folder = _save(ours, tmp_path / "ours", ["background", "person"])
    model, _, start = start_from_preset(
        _config(folder, "segmentation"), "ImageSegmenter", ["background", "car", "Person"]
    )
    assert start.matched == {"background": "background", "Person": "person"}
    x = _pixels(4)
    np.testing.assert_allclose(model(x).numpy()[..., [0, 2]], ours(x).numpy(), atol=1e-5)

    neck = keras_hub.models.DeepLabV3Backbone(
        image_encoder=_tiny_hub_resnet(),
        spatial_pyramid_pooling_key="P4",
        low_level_feature_key="P2",
        upsampling_size=4,
        dilation_rates=[6, 12, 18],
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.DeepLabV3ImageConverter(scale=1 / 255.0, offset=0.0)
    hub = keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=neck,
        num_classes=21,
        preprocessor=keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(image_converter=converter),
    )
    folder = _save(hub, tmp_path / "hub_deeplab")
    config = _config(folder, "segmentation", "model.preset_classes=voc21", "model.class_map={pedestrian: person}")
    model, _, start = start_from_preset(config, "ImageSegmenter", ["background", "pedestrian"])
    assert start.matched == {"background": "background", "pedestrian": "person"}
    np.testing.assert_allclose(model(x).numpy(), hub(x / 255.0).numpy()[..., [0, 15]], atol=1e-4)


@pytest.mark.slow(seconds=10)
def test_keras_hub_image_classifier_preset_gives_backbone_and_class_rows(tmp_path):
    import keras_hub

    from kerascv_tl.tasks.classifier import feature_extractor

    keras.utils.set_random_seed(4)
    converter = keras_hub.layers.ResNetImageConverter(scale=1 / 255.0, offset=-0.5)
    source = keras_hub.models.ResNetImageClassifier(
        backbone=_tiny_hub_resnet(),
        num_classes=3,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter),
    )
    _distinct_class_bias(source)
    folder = _save(source, tmp_path / "hub_classifier")
    config = _config(folder, "classification", "model.preset_classes=cat,dog,bird")
    model, _, start = start_from_preset(config, "ImageClassifier", ["bird", "fish", "cat"])
    assert start.matched == {"bird": "bird", "cat": "cat"} and start.fresh == ["fish"]
    x = _pixels(5)
    pooled = source.pooler(source.backbone(x / 255.0 - 0.5))
    np.testing.assert_allclose(feature_extractor(model)(x), pooled, atol=1e-4)
    kernel, bias = (np.asarray(w) for w in model.get_layer("predictions").weights)
    old_kernel, old_bias = (np.asarray(w) for w in source.output_dense.weights)
    np.testing.assert_array_equal(kernel[:, [0, 2]], old_kernel[:, [2, 0]])
    np.testing.assert_array_equal(bias[[0, 2]], old_bias[[2, 0]])


def test_preset_keys_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="model.preset is not offered for multi_label"):
        load_config(None, ["task=multi_label", f"model.preset={tmp_path}"])
    with pytest.raises(ConfigError, match="export format preset is not offered for classification"):
        load_config(None, ["export.formats=[preset]"])
    with pytest.raises(ConfigError, match="backbone.name cannot be set with model.preset"):
        load_config(None, ["task=detection", f"model.preset={tmp_path}", "backbone.name=resnet50"])
    with pytest.raises(ConfigError, match="anchor_aspect_ratios cannot be set with model.preset"):
        load_config(None, ["task=detection", f"model.preset={tmp_path}", "head.anchor_aspect_ratios=auto"])
    with pytest.raises(ConfigError, match="group_norm cannot be set with model.preset"):
        load_config(None, ["task=detection", f"model.preset={tmp_path}", "head.group_norm=false"])
    assert load_config(None, ["task=detection", f"model.preset={tmp_path}"]).head.box_loss == "smooth_l1"
    with pytest.raises(ConfigError, match="model.class_map needs model.preset"):
        load_config(None, ["task=detection", "model.class_map={a: b}"])
