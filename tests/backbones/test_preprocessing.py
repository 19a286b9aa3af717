"""The normalisation layer equals keras' preprocess_input and survives serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.applications import imagenet_utils

from kerascv_tl.backbones import ImagePreprocessing, Preprocessing


def _pixels(seed: int = 0, shape=(3, 7, 5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 255.0, size=shape).astype("float32")


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_layer_equals_keras_preprocess_input(mode):
    x = _pixels()
    expected = imagenet_utils.preprocess_input(x.copy(), mode=mode, data_format="channels_last")
    layer = Preprocessing.keras_mode(mode).layer()
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Not the identity: each mode really changes the pixels.
    assert np.abs(got - x).max() > 1.0


def test_caffe_mode_reorders_channels():
    # One pure-red pixel: caffe (BGR) puts red in the last channel.
    x = np.zeros((1, 1, 1, 3), "float32")
    x[..., 0] = 255.0
    got = keras.ops.convert_to_numpy(Preprocessing.keras_mode("caffe").layer()(x))[0, 0, 0]
    np.testing.assert_allclose(got, [-103.939, -116.779, 255.0 - 123.68], atol=1e-4)


def test_uint8_input_and_none_mode():
    x = np.random.default_rng(1).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    layer = Preprocessing.keras_mode("none").layer()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x.astype("float32"))
    torch = keras.ops.convert_to_numpy(Preprocessing.keras_mode("torch").layer()(x))
    np.testing.assert_allclose(torch, imagenet_utils.preprocess_input(x.astype("float32"), mode="torch"), atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channel_order"):
        ImagePreprocessing(channel_order="GRB")
    with pytest.raises(ValueError, match="unknown keras preprocessing mode"):
        Preprocessing.keras_mode("inception")
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        Preprocessing.from_dict({"scale": 1.0, "mena": [0, 0, 0]}, source="test")


def test_preprocessing_dict_round_trip():
    pre = Preprocessing.keras_mode("caffe")
    data = pre.to_dict()
    assert data["mean"] == [103.939, 116.779, 123.68] and data["channel_order"] == "BGR"
    assert Preprocessing.from_dict(data, source=pre.source) == pre
    custom = Preprocessing.from_dict({"scale": 0.5, "mean": [1, 2, 3], "channel_order": "bgr"}, source="cfg")
    assert custom == Preprocessing(0.5, (1.0, 2.0, 3.0), (1.0, 1.0, 1.0), "BGR", "cfg")


def test_get_config_from_config():
    layer = ImagePreprocessing(1 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "BGR", name="norm")
    config = layer.get_config()
    assert config["channel_order"] == "BGR" and config["name"] == "norm"
    clone = ImagePreprocessing.from_config(config)
    assert (clone.scale, clone.mean, clone.std, clone.channel_order) == (
        layer.scale,
        layer.mean,
        layer.std,
        layer.channel_order,
    )
    x = _pixels(2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(layer(x)), atol=1e-6)
    # Through keras' generic (de)serialisation, as a .keras file does it.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, ImagePreprocessing) and again.get_config() == config


def test_keras_file_round_trip(tmp_path):
    pre = Preprocessing.keras_mode("torch")
    inputs = keras.Input(shape=(6, 6, 3))
    outputs = keras.layers.Conv2D(2, 1, name="conv")(pre.layer(name="preprocessing")(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the layer is registered
    layer = loaded.get_layer("preprocessing")
    assert isinstance(layer, ImagePreprocessing)
    assert (layer.scale, layer.mean, layer.std, layer.channel_order) == (pre.scale, pre.mean, pre.std, "RGB")
    x = _pixels(3, (2, 6, 6, 3))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), imagenet_utils.preprocess_input(x.copy(), mode="torch"), atol=1e-4
    )
