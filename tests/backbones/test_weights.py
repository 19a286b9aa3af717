"""Weight resolution: imagenet offline, local weight files (real MobileNetV2), .keras transplant, presets."""

from __future__ import annotations

import hashlib
import logging
import socket
import time

import keras
import numpy as np
import pytest
from PIL import Image

import kerascv_tl
from kerascv_tl.backbones import WeightsError, build_backbone, get_backbone_spec
from kerascv_tl.backbones.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from kerascv_tl.backbones.weights import keras_cache_dir


def _assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def _run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def _online(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


# --- weights="imagenet" through Keras' download-and-cache path -------------------------------------


def test_imagenet_offline_fails_fast_naming_file_and_cache(tmp_path, monkeypatch):
    if _online("storage.googleapis.com"):
        pytest.skip("network reachable: this test checks the offline error")
    # Keras reads $KERAS_HOME once, when keras is imported (keras/src/backend/config.py sets _KERAS_DIR),
    # and get_file() asks config.keras_home() for it at call time. Setting the variable now is not
    # enough, so point keras' own value at an empty folder too: no cached file can make this pass.
    import keras.src.backend.config as keras_config

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "models"

    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        build_backbone("resnet50", weights="imagenet", image_size=64)
    assert time.monotonic() - start < 10
    message = str(info.value)
    filename = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert f"Keras wants the file {filename} from https://" in message
    assert str(tmp_path / "models" / filename) in message
    assert "no network" in message
    # Keras really looked in (and created) the patched cache folder, and left nothing behind.
    assert (tmp_path / "models").is_dir()
    assert not (tmp_path / "models" / filename).exists()


def test_cache_dir_is_the_one_keras_uses(tmp_path, monkeypatch):
    import keras.src.backend.config as keras_config

    # Only the environment changes after import: keras keeps its folder, so must the message.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "ignored"))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "models"
    # An unwritable keras home falls back to /tmp/.keras, as keras.utils.get_file does.
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "does-not-exist"))
    assert str(keras_cache_dir()) == "/tmp/.keras/models"


# --- local weight files: the real MobileNetV2 ImageNet weights ------------------------------------


def test_real_mobilenet_v2_file_loads_with_sidecar_preprocessing(mobilenet_v2_weights):
    backbone = build_backbone("mobilenet_v2", weights=str(mobilenet_v2_weights), image_size=96)
    reference = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    reference.load_weights(mobilenet_v2_weights)
    _assert_same_weights(backbone.model, reference)
    # ... and not just two identical random inits: the file's values differ from a fresh model.
    fresh = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    assert not np.array_equal(fresh.get_layer("Conv1").kernel.numpy(), reference.get_layer("Conv1").kernel.numpy())

    pre = backbone.preprocessing
    assert pre.scale == pytest.approx(1 / 255)
    assert pre.mean == pytest.approx(IMAGENET_MEAN) and pre.mean[0] == pytest.approx(0.485)
    assert pre.std == pytest.approx(IMAGENET_STD) and pre.std[0] == pytest.approx(0.229)
    assert pre.channel_order == "RGB"
    assert "preprocessing.json" in pre.source
    assert pre != Preprocessing.keras_mode("tf")  # the registry default for mobilenet_v2 lost

    source = backbone.weights_source
    assert source["kind"] == "file"
    assert source["path"] == str(mobilenet_v2_weights.resolve())
    assert source["sha256"] == hashlib.sha256(mobilenet_v2_weights.read_bytes()).hexdigest()


def test_explicit_preprocessing_beats_the_sidecar(mobilenet_v2_weights):
    override = {"scale": 1 / 127.5, "mean": [1.0, 1.0, 1.0], "std": [1.0, 1.0, 1.0]}
    backbone = build_backbone("mobilenet_v2", weights=str(mobilenet_v2_weights), image_size=96, preprocessing=override)
    assert backbone.preprocessing.mean == (1.0, 1.0, 1.0)
    assert backbone.preprocessing.scale == pytest.approx(1 / 127.5)
    assert backbone.preprocessing.source == "config backbone.preprocessing"
    assert backbone.weights_source["kind"] == "file"


def _flowers(root, size: int) -> np.ndarray:
    """The first validation image of each class, squashed to size x size, RGB in [0, 255]."""
    classes = sorted(p.name for p in (root / "val").iterdir() if p.is_dir())
    assert len(classes) == 5
    images = []
    for name in classes:
        path = sorted((root / "val" / name).glob("*.jpg"))[0]
        image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        images.append(np.asarray(image, dtype="float32"))
    return np.stack(images)


def test_real_weights_give_discriminative_features(mobilenet_v2_weights, flowers5):
    backbone = build_backbone("mobilenet_v2", weights=str(mobilenet_v2_weights), image_size=96)
    normalise = backbone.preprocessing.layer()
    images = _flowers(flowers5, 96)

    def embed(x):
        features = keras.ops.convert_to_numpy(backbone.model(normalise(x), training=False))
        pooled = features.mean(axis=(1, 2))
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True), pooled

    unit, raw = embed(images)
    assert raw.shape == (5, 1280) and np.isfinite(raw).all()
    assert (raw > 0).mean() > 0.3  # ReLU6 features, not all dead
    cosine = unit @ unit.T
    others = cosine[~np.eye(5, dtype=bool)]
    # Five flowers of five classes are far apart (measured max ~0.63; a random-init net gives ~0.98) ...
    assert others.max() < 0.8
    # ... while each flower, mirrored, stays closer to itself than to any other flower (measured >= 0.86).
    flipped, _ = embed(images[:, :, ::-1])
    self_similarity = (unit * flipped).sum(axis=1)
    assert (self_similarity > others.max()).all()


def test_missing_file_raises_naming_path(tmp_path):
    missing = tmp_path / "nowhere" / "mobilenet.weights.h5"
    with pytest.raises(WeightsError, match="not found") as info:
        build_backbone("mobilenet_v2", weights=str(missing), image_size=64)
    assert str(missing) in str(info.value)


def test_missing_pathlib_path_is_a_weights_error(tmp_path):
    missing = tmp_path / "absent.weights.h5"
    with pytest.raises(WeightsError, match="not found"):
        build_backbone("mobilenet_v2", weights=missing, image_size=64)


def test_file_specific_sidecar_wins_and_bad_sidecar_is_reported(tmp_path, mobilenet_v2_weights):
    weights = tmp_path / "mine.weights.h5"
    weights.symlink_to(mobilenet_v2_weights)  # no preprocessing.json beside this one
    sidecar = tmp_path / "mine.preprocessing.json"
    sidecar.write_text('{"note": "no numbers here"}')
    with pytest.raises(WeightsError, match="none of scale, mean, std") as info:
        build_backbone("mobilenet_v2", weights=weights, image_size=64)  # a pathlib.Path works too
    assert str(sidecar) in str(info.value)
    sidecar.write_text('{"scale": 1.0, "mean": [103.939, 116.779, 123.68], "channel_order": "BGR"}')
    (tmp_path / "preprocessing.json").write_text('{"scale": 0.5}')  # the generic one loses
    backbone = build_backbone("mobilenet_v2", weights=weights, image_size=64)
    assert backbone.preprocessing == Preprocessing(
        1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "BGR", f"sidecar {sidecar}"
    )
    assert backbone.weights_source["sha256"] == hashlib.sha256(mobilenet_v2_weights.read_bytes()).hexdigest()


def test_missing_file_fallback_to_random_warns(tmp_path, caplog):
    missing = tmp_path / "mobilenet.weights.h5"
    with caplog.at_level(logging.WARNING, logger="kerascv_tl.backbones.weights"):
        backbone = build_backbone("mobilenet_v2", weights=str(missing), image_size=64, fallback_to_random=True)
    assert backbone.weights_source["kind"] == "none"
    assert backbone.weights_source["wanted"] == str(missing)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "RANDOM" in warnings[0].getMessage() and str(missing) in warnings[0].getMessage()
    assert backbone.model.output_shape == (None, 2, 2, 1280)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_file_for_another_architecture_is_a_weights_error(mobilenet_v2_weights):
    with pytest.raises(WeightsError, match="cannot load into resnet50"):
        build_backbone("resnet50", weights=str(mobilenet_v2_weights), image_size=64)


def test_unknown_file_kind_is_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not keras")
    with pytest.raises(WeightsError, match=r"\.weights\.h5, \.h5 or \.keras"):
        build_backbone("mobilenet_v2", weights=str(path), image_size=64)


def test_keras_classifier_file_transplants_backbone(tmp_path):
    model = kerascv_tl.classifier("mobilenet_v2", 3, weights=None, image_size=64)
    path = tmp_path / "classifier.keras"
    model.save(path)
    backbone = build_backbone("mobilenet_v2", weights=str(path), image_size=64)
    _assert_same_weights(backbone.model, model.get_layer("backbone"))
    assert backbone.weights_source["kind"] == "file" and backbone.weights_source["path"] == str(path.resolve())
    assert backbone.preprocessing == Preprocessing.keras_mode("tf")  # no sidecar: registry default
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(_run(backbone.model, x), _run(model.get_layer("backbone"), x), atol=1e-5)
    with pytest.raises(WeightsError, match="do not fit backbone mobilenet_v3_small"):
        build_backbone("mobilenet_v3_small", weights=str(path), image_size=64)


# --- KerasHub presets ------------------------------------------------------------------------------


def _tiny_vit():
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vit_preset")
    original = _tiny_vit()
    original.save_to_preset(str(folder))
    return folder, original


def test_local_preset_folder_as_name_and_as_weights(vit_preset):
    folder, original = vit_preset
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    expected = _run(original, x)

    by_name = build_backbone(str(folder))
    assert by_name.name == str(folder) and by_name.image_size == 32
    assert by_name.pooling == "token" and by_name.pyramid_layers == {}
    assert by_name.weights_source == {"kind": "preset", "handle": str(folder), "class": "ViTBackbone"}
    np.testing.assert_allclose(_run(by_name.model, x), expected, atol=1e-6)

    as_weights = build_backbone("vit_tiny16", weights=str(folder), image_size=32)
    assert as_weights.name == "vit_tiny16" and as_weights.weights_source["kind"] == "preset"
    np.testing.assert_allclose(_run(as_weights.model, x), expected, atol=1e-6)
    _assert_same_weights(as_weights.model, original)


def test_preset_with_other_image_size_is_rejected(vit_preset):
    folder, _ = vit_preset
    with pytest.raises(WeightsError, match="expects 32x32 images"):
        build_backbone("vit_tiny16", weights=str(folder), image_size=64)
    with pytest.raises(WeightsError, match="expects 32x32 images"):
        build_backbone(str(folder), image_size=224)


def test_preset_image_converter_becomes_the_preprocessing(tmp_path):
    import keras_hub

    _tiny_vit().save_to_preset(str(tmp_path))
    scale = [1 / (0.229 * 255), 1 / (0.224 * 255), 1 / (0.225 * 255)]
    offset = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=scale, offset=offset)
    converter.save_to_preset(str(tmp_path))
    backbone = build_backbone(str(tmp_path))
    assert "image converter" in backbone.preprocessing.source
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone.preprocessing.layer()(x)),
        keras.ops.convert_to_numpy(converter(x)),
        atol=1e-4,
    )


def test_unreachable_preset_handle_fails_fast(tmp_path, monkeypatch):
    if _online("api.kaggle.com"):
        pytest.skip("network reachable: this test checks the offline error")
    # kagglehub reads its cache folder from the environment at call time: an empty one means no
    # previously downloaded preset can make this pass, and nothing is written to ~/.cache.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    handle = "kaggle://keras/vit/keras/vit_base_patch16_224_imagenet"
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        build_backbone(handle, image_size=224)
    assert time.monotonic() - start < 15
    assert handle in str(info.value)
    # The same through a registry name whose imagenet weights are a KerasHub preset.
    start = time.monotonic()
    with pytest.raises(WeightsError, match="vit_base_patch16_224_imagenet"):
        build_backbone("vit_base16", weights="imagenet", image_size=224)
    assert time.monotonic() - start < 15
    with pytest.raises(WeightsError, match="resnet_50_imagenet"):
        build_backbone("hub_resnet50", weights="imagenet", image_size=64)


def test_vit_without_imagenet_preset_says_so():
    with pytest.raises(WeightsError, match="vit_tiny16 has no ImageNet preset"):
        build_backbone("vit_tiny16", weights="imagenet", image_size=32)


def test_size_agnostic_keras_hub_resnet_preset_is_rebuilt_at_the_asked_size(tmp_path):
    # KerasHub saves ResNet presets with image_shape (None, None, 3); the pyramid heads need static shapes.
    import keras_hub

    original = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
    )
    original.save_to_preset(str(tmp_path))
    backbone = build_backbone("hub_resnet18", weights=str(tmp_path), image_size=64)
    assert backbone.model.input_shape == (None, 64, 64, 3)
    assert backbone.weights_source == {"kind": "preset", "handle": str(tmp_path), "class": "ResNetBackbone"}
    assert backbone.preprocessing == get_backbone_spec("hub_resnet18").preprocessing  # no converter saved
    _assert_same_weights(backbone.model, original)
    x = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(_run(backbone.model, x), _run(original, x), atol=1e-5)
    # The net's own pyramid_outputs name the taps.
    assert backbone.pyramid_layers == {8: "stack1_block1_out", 16: "stack2_block1_out", 32: "stack3_block1_out"}
    assert build_backbone(str(tmp_path)).model.input_shape == (None, 224, 224, 3)
