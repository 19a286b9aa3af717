import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.data.readers import folder_source
from kerascv_tl.export import export_classifier, latest_version_dir, load_serving
from kerascv_tl.tasks import classifier

CLASSES = ["circle", "square", "triangle"]


def _keras_probabilities(model, source, data_config):
    return np.concatenate([model.predict_on_batch(x) for x, _ in eval_dataset(source, data_config, batch_size=8)])


def _serve_bytes(loaded, paths):
    encoded = tf.constant([Path(p).read_bytes() for p in paths])
    return {k: v.numpy() for k, v in loaded.signatures["serving_default"](image_bytes=encoded).items()}


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    model = classifier("mobilenet_v2", len(CLASSES), weights="none", image_size=32)
    # Non-trivial BatchNorm statistics: serving in training mode (batch statistics) would now differ.
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


def test_signatures_follow_tf_serving_conventions(tiny_model, tmp_path):
    folder = export_classifier(
        tiny_model, CLASSES, tmp_path / "shapes", crop_fraction=1.0, top_k=5, card={"name": "shapes"}
    )
    assert folder == tmp_path / "shapes" / "1" and (folder / "saved_model.pb").is_file()
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("saved_model_cli")), "show", "--dir", str(folder), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    serving = shown.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "inputs['image_bytes']" in serving and "dtype: DT_STRING" in serving and "shape: (-1)" in serving
    for output in ("probabilities", "scores", "class_ids", "class_names"):
        assert f"outputs['{output}']" in serving
    assert "signature_def['serving_images']" in shown and "DT_UINT8" in shown
    card = json.loads((folder / "model_card.json").read_text())
    assert card["labels"] == CLASSES and card["export"]["top_k"] == 3 and card["name"] == "shapes"
    assert [p.name for p in (tmp_path / "shapes").iterdir()] == ["1"]  # no temporary folders left


def test_versions_increment_and_latest_is_found(tiny_model, tmp_path):
    first = export_classifier(tiny_model, CLASSES, tmp_path / "m")
    second = export_classifier(tiny_model, CLASSES, tmp_path / "m")
    assert (first.name, second.name) == ("1", "2")
    assert latest_version_dir(tmp_path / "m") == second and latest_version_dir(first) == first
    with pytest.raises(FileExistsError):
        export_classifier(tiny_model, CLASSES, tmp_path / "m", version=2)
    with pytest.raises(ValueError, match="2 class names"):
        export_classifier(tiny_model, CLASSES[:2], tmp_path / "n")


def test_served_probabilities_equal_the_keras_model(tiny_model, shapes_classification, tmp_path):
    # Mixed formats and sizes, a batch of several images, through both signatures.
    source = folder_source(shapes_classification / "val")
    paths = list(source.paths)
    big = tmp_path / "big.jpg"
    Image.open(paths[0]).convert("RGB").resize((80, 50)).save(big, quality=95)
    paths.append(str(big))
    data_config = load_config(None, ["data.image_size=32", "data.crop_fraction=0.875"]).data
    folder = export_classifier(tiny_model, CLASSES, tmp_path / "m", crop_fraction=0.875)
    loaded, _ = load_serving(tmp_path / "m")
    served = _serve_bytes(loaded, paths)
    every = folder_source(shapes_classification / "val")
    every.paths, every.labels = paths, np.concatenate([every.labels, [0]])
    expected = _keras_probabilities(tiny_model, every, data_config)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-4)
    top = np.argsort(-expected, axis=1)[:, :3]
    np.testing.assert_array_equal(served["class_ids"], top)
    assert [n.decode() for n in served["class_names"][0]] == [CLASSES[i] for i in top[0]]
    images = tf.constant(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[:4]]))
    uint8 = loaded.signatures["serving_images"](images=images)["probabilities"].numpy()
    np.testing.assert_allclose(uint8, expected[:4], atol=1e-4)
    assert folder.name == "1"


def test_no_train_serve_skew_on_real_flowers_jpegs(flowers5, mobilenet_v2_weights, tmp_path):
    """Real photos of many sizes, the real ImageNet MobileNetV2: SavedModel == in-memory Keras model."""
    keras.utils.set_random_seed(0)
    model = classifier("mobilenet_v2", 5, weights=str(mobilenet_v2_weights), image_size=224)
    val = folder_source(flowers5 / "val")
    pick = np.concatenate([np.flatnonzero(val.labels == c)[:2] for c in range(5)])
    subset = val.subset(pick, "flowers5 val sample")
    data_config = load_config(None, ["data.image_size=224", "data.crop_fraction=1.0"]).data
    expected = _keras_probabilities(model, subset, data_config)
    export_classifier(model, val.class_names, tmp_path / "flowers", crop_fraction=1.0)
    loaded, _ = load_serving(tmp_path / "flowers")
    served = _serve_bytes(loaded, subset.paths)["probabilities"]
    assert np.abs(served - expected).max() <= 1e-4
    assert expected.std() > 1e-3  # real, input-dependent outputs
