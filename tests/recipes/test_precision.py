"""`precision` and `jit_compile`: mixed-precision training of the three tasks with float32 outputs and Keras'
loss scaling, the global dtype policy left as it was, and the jit resolver."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.optimizers import LossScaleOptimizer
from support import tiny_overrides

import kerascv_tl
from kerascv_tl.config import load_config
from kerascv_tl.precision import has_accelerator, precision_scope, resolve_jit_compile

SIZE = 64
NO_XLA = resolve_jit_compile("auto") is False  # CPU-only machine: "auto" means no XLA


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts from, and must leave, the float32 default."""
    keras.config.set_dtype_policy("float32")
    yield
    policy = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("float32")
    assert policy == "float32", f"the test left the global dtype policy at {policy}"


def test_jit_auto_is_off_on_cpu_and_keras_auto_elsewhere():
    assert resolve_jit_compile("auto", accelerator=False) is False
    assert resolve_jit_compile("auto", accelerator=True) == "auto"
    for accelerator in (False, True):
        assert resolve_jit_compile(True, accelerator) is True and resolve_jit_compile("true", accelerator) is True
        assert resolve_jit_compile(False, accelerator) is False and resolve_jit_compile("False", accelerator) is False
    assert resolve_jit_compile("auto") == ("auto" if has_accelerator() else False)
    with pytest.raises(ValueError, match="true, false or auto"):
        resolve_jit_compile("sometimes")


def test_precision_scope_puts_the_callers_policy_back_also_on_error():
    keras.config.set_dtype_policy("mixed_bfloat16")  # a notebook user's own choice
    try:
        with precision_scope("mixed_float16"):
            layer = keras.layers.Dense(2)
        assert layer.dtype_policy.name == "mixed_float16" and keras.config.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(RuntimeError), precision_scope("float32"):
            raise RuntimeError("building failed")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(ValueError, match="mixed_float16"), precision_scope("float16"):
            pass
    finally:
        keras.config.set_dtype_policy("float32")


def _history(path):
    with open(path, newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow(seconds=45)
def test_mixed_float16_classification_run_trains_saves_and_exports_float32(
    shapes_classification, tmp_path, monkeypatch
):
    from kerascv_tl import recipes
    from kerascv_tl.export import load_serving
    from kerascv_tl.recipes import train

    seen = {}
    build = recipes.set_up

    def spy(*args, **kwargs):
        seen["setup"] = build(*args, **kwargs)
        seen["policy_after_setup"] = keras.config.dtype_policy().name
        return seen["setup"]

    monkeypatch.setattr(recipes, "set_up", spy)
    config = load_config(
        None, tiny_overrides(shapes_classification, recipe="feature_extraction", precision="mixed_float16")
    )
    run, metrics = train(config, output=tmp_path / "run", verbose=0)

    assert seen["policy_after_setup"] == "float32"
    model = seen["setup"].model
    assert model.get_layer("backbone").get_layer("Conv1").compute_dtype == "float16"
    assert model.get_layer("preprocessing").compute_dtype == model.get_layer("predictions").compute_dtype == "float32"
    assert isinstance(model.optimizer, LossScaleOptimizer)  # Keras' loss scaling, from model.compile
    assert model.jit_compile is False or not NO_XLA
    assert np.isfinite(_history(run.history("head"))).all()
    assert 0.0 <= metrics["accuracy"] <= 1.0
    card = json.loads((run / "model_card.json").read_text())
    assert card["precision"] == "mixed_float16" and card["config"]["precision"] == "mixed_float16"

    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = model(images, training=False)
    loaded = run.load_model()  # model.keras keeps every layer's policy
    assert loaded.get_layer("backbone").get_layer("Conv1").compute_dtype == "float16"
    again = loaded(images, training=False)
    assert expected.dtype == again.dtype == "float32"
    np.testing.assert_allclose(again, expected, atol=1e-3)

    from kerascv_tl.cli import main

    assert main(["export", str(run.root), "--output", str(tmp_path / "saved")]) == 0
    serving, folder = load_serving(tmp_path / "saved")
    signature = serving.signatures["serving_images"]
    assert {k: v.dtype for k, v in signature.structured_outputs.items()} == {
        "probabilities": tf.float32,
        "scores": tf.float32,
        "class_ids": tf.int32,
        "class_names": tf.string,
    }
    out = signature(images=tf.constant(images.astype("uint8")))
    assert out["probabilities"].shape == (2, 3) and np.isfinite(out["probabilities"].numpy()).all()
    assert json.loads((folder / "model_card.json").read_text())["precision"] == "mixed_float16"


def test_mixed_bfloat16_classifier_needs_no_loss_scaling():
    from kerascv_tl.tasks.classification import compile_classifier

    with precision_scope("mixed_bfloat16"):
        model = kerascv_tl.classifier("mobilenet_v2", 3, weights="none", image_size=32)
    compile_classifier(model, load_config(None).train, 1e-3, 3)
    assert not isinstance(model.optimizer, LossScaleOptimizer)
    model.run_eagerly = True  # one tiny step: tracing it would cost more than running it
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 2, 0], 3)
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])
    assert model.get_layer("backbone").get_layer("Conv1").compute_dtype == "bfloat16"
    assert model(x, training=False).dtype == "float32"


def _detection_batch():
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    y = {
        "boxes": np.array([[[4, 4, 30, 40], [0, 0, 0, 0]], [[10, 20, 60, 60], [2, 2, 20, 20]]], "float32"),
        "labels": np.array([[0, -1], [1, 0]], "int32"),
    }
    return x, y


def test_mixed_float16_detector_trains_with_float32_logits_and_loss(tmp_path):
    from kerascv_tl.tasks.detection import compile_detector

    keras.utils.set_random_seed(0)
    with precision_scope("mixed_float16"):
        model = kerascv_tl.detector("mobilenet_v2", num_classes=2, weights="none", image_size=SIZE)
    assert model.dtype_policy.name == "mixed_float16"
    assert model.box_head.compute_dtype == model.classification_head.compute_dtype == "float16"
    compile_detector(model, load_config(None).train, 1e-3, "auto")
    assert isinstance(model.optimizer, LossScaleOptimizer)
    assert model.jit_compile is False or not NO_XLA
    model.run_eagerly = True  # two tiny steps: tracing the training step would cost more than running it
    x, y = _detection_batch()
    raw = model(x, training=False)
    assert {k: v.dtype for k, v in raw.items()} == {"bbox_regression": "float32", "cls_logits": "float32"}
    losses = model.fit(x, y, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(losses).all()
    decoded = model.decode_predictions(model(x, training=False), x)  # what predict() and the export run
    assert decoded["boxes"].dtype == decoded["confidence"].dtype == "float32"

    path = tmp_path / "detector.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.box_head.compute_dtype == "float16"  # rebuilt as trained, under the float32 default
    again = loaded(x, training=False)
    assert again["cls_logits"].dtype == "float32"
    np.testing.assert_allclose(again["cls_logits"], model(x, training=False)["cls_logits"], atol=1e-3)


@pytest.mark.parametrize("name, architecture", [("mobilenet_v2", "deeplabv3"), ("mit_b0", "segformer")])
def test_mixed_float16_segmenter_trains_with_float32_logits_and_loss(name, architecture):
    from kerascv_tl.tasks.segmentation import compile_segmenter

    keras.utils.set_random_seed(0)
    with precision_scope("mixed_float16"):
        model = kerascv_tl.segmenter(name, 3, weights="none", image_size=SIZE, architecture=architecture)
    assert model.backbone.compute_dtype == "float16"
    compile_segmenter(model, load_config(None).train, 1e-4, 3, "auto")
    assert isinstance(model.optimizer, LossScaleOptimizer)
    assert model.jit_compile is False or not NO_XLA
    model.run_eagerly = True  # two tiny steps: tracing the training step would cost more than running it
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    y = np.zeros((2, SIZE, SIZE), "int32")
    y[:, 16:48, 16:48] = 1
    y[1, :8] = 2
    assert model(x, training=False).dtype == "float32"
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and 0.0 <= history["mean_iou"][-1] <= 1.0
