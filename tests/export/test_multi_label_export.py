import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.multi_label import read_multi_label_csv
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.data.synthetic.multi_label import write_multi_label_dataset
from kerascv_tl.export import load_serving
from kerascv_tl.export.multi_label_classifier import export_multi_label_classifier
from kerascv_tl.tasks.classifier import classifier

CLASSES = ["circle", "square", "triangle"]


@pytest.mark.slow(seconds=20)
def test_served_probabilities_equal_the_keras_model_and_labels_follow_the_threshold(tmp_path):
    keras.utils.set_random_seed(0)
    model = classifier("mobilenet_v2", len(CLASSES), weights="none", image_size=32, activation="sigmoid")
    # Non-trivial BatchNorm statistics: serving in training mode (batch statistics) would now differ.
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 2.0, layer.moving_variance.shape))
    root = write_multi_label_dataset(tmp_path / "ml", num_train=1, num_val=6, image_size=40, seed=0)
    # Mixed formats and sizes: a wide JPEG beside the PNGs.
    Image.open(root / "images" / "val" / "00000.png").convert("RGB").resize((80, 50)).save(
        root / "wide.jpg", quality=95
    )
    with open(root / "val.csv", "a") as f:
        f.write("wide.jpg,circle\n")
    source = read_multi_label_csv(root / "val.csv", class_names=CLASSES)
    data = load_config(None, ["task=multi_label", "data.image_size=32", "data.crop_fraction=0.875"]).data
    images = np.concatenate([x.numpy() for x, _ in eval_dataset(source, data, batch_size=4, one_hot=False)])
    expected = model.predict(images, verbose=0)
    assert expected.shape == (7, 3) and expected.std() > 1e-4  # input-dependent outputs
    threshold = float(np.median(expected))
    folder = export_multi_label_classifier(
        model, CLASSES, tmp_path / "m", threshold, crop_fraction=0.875, card={"name": "ml", "task": "multi_label"}
    )

    loaded, found = load_serving(tmp_path / "m")
    assert found == folder == tmp_path / "m" / "1"
    encoded = tf.constant([Path(p).read_bytes() for p in source.paths])
    served = {k: v.numpy() for k, v in loaded.signatures["serving_default"](image_bytes=encoded).items()}
    assert set(served) == {"probabilities", "above_threshold", "labels"}
    assert served["probabilities"].dtype == np.float32 and served["above_threshold"].dtype == bool
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-4)
    above = served["above_threshold"]
    np.testing.assert_array_equal(above, served["probabilities"] >= np.float32(threshold))
    assert above.any() and not above.all()
    names = np.array(CLASSES, dtype=object)
    assert [[n.decode() for n in row] for row in served["labels"]] == [
        [n if a else "" for n, a in zip(names, row)] for row in above
    ]

    pixels = tf.constant(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in source.paths[:6]]))
    uint8 = loaded.signatures["serving_images"](images=pixels)["probabilities"].numpy()
    np.testing.assert_allclose(uint8, expected[:6], atol=1e-4)

    card = json.loads((folder / "model_card.json").read_text())
    assert card["labels"] == CLASSES and card["task"] == "multi_label"
    export = card["export"]
    assert export["threshold"] == pytest.approx(threshold) and export["image_size"] == 32
    assert set(export["outputs"]) == {"probabilities", "above_threshold", "labels"}
    assert export["signatures"]["serving_default"]["outputs"] == ["probabilities", "above_threshold", "labels"]
    with pytest.raises(ValueError, match="2 class names"):
        export_multi_label_classifier(model, CLASSES[:2], tmp_path / "n", 0.5)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        export_multi_label_classifier(model, CLASSES, tmp_path / "n", 1.0)


@pytest.mark.slow(seconds=15)
def test_litert_export_serves_the_same_label_sets(tmp_path):
    from kerascv_tl.export.classifier import classifier_network
    from kerascv_tl.export.multi_label_classifier import multi_label_details, multi_label_steps
    from kerascv_tl.export.portable import write_litert
    from kerascv_tl.predict import load_predictor

    keras.utils.set_random_seed(0)
    model = classifier("mobilenet_v2", len(CLASSES), weights="none", image_size=32, activation="sigmoid")
    root = write_multi_label_dataset(tmp_path / "ml", num_train=1, num_val=6, image_size=40, seed=0)
    source = read_multi_label_csv(root / "val.csv", class_names=CLASSES)
    saved = export_multi_label_classifier(model, CLASSES, tmp_path / "m", 0.5, card={"task": "multi_label"})
    steps = multi_label_steps(CLASSES, multi_label_details(model, CLASSES, 0.5, 0.875, "test"))
    path = write_litert(
        model, steps, classifier_network(model), tmp_path / "ml.tflite", {"task": "multi_label"}, CLASSES
    )
    expected = load_predictor(saved).predict(source.paths)
    got = load_predictor(path).predict(source.paths)
    assert [r["labels"] for r in got] == [r["labels"] for r in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(list(g["probabilities"].values()), list(e["probabilities"].values()), atol=2e-3)
    assert json.loads(path.with_suffix(".json").read_text())["export"]["threshold"] == 0.5
