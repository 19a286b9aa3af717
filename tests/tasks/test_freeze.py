"""Freezing / partial unfreezing of a classifier's backbone, with BatchNorm kept frozen throughout."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerascv_tl.backbones import Backbone, Preprocessing, backbone_blocks
from kerascv_tl.tasks import classifier, freeze_backbone, get_backbone, unfreeze_backbone
from kerascv_tl.tasks.freeze import parse_unfreeze

SIZE = 64


@pytest.fixture
def model():
    return classifier("mobilenet_v2", 3, weights=None, image_size=SIZE)


def _ids(variables) -> set[int]:
    return {id(v) for v in variables}


def _head_variables(model):
    return list(model.get_layer("predictions").weights)


def _batch_norms(model):
    return [
        layer
        for layer in get_backbone(model)._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _assert_batch_norm_frozen(model):
    norms = _batch_norms(model)
    assert len(norms) == 52  # MobileNetV2: every BatchNormalization layer
    assert all(not layer.trainable for layer in norms)
    assert not _ids(v for layer in norms for v in layer.weights) & _ids(model.trainable_variables)


def _block_variables(model, names):
    groups = dict(backbone_blocks(get_backbone(model)))
    return [v for name in names for layer in groups[name] for v in layer.weights if v.trainable]


def test_freeze_backbone_leaves_only_the_head(model):
    assert len(model.trainable_variables) > 2  # trainable as built
    freeze_backbone(model)
    assert _ids(model.trainable_variables) == _ids(_head_variables(model))
    assert not get_backbone(model).trainable_variables
    _assert_batch_norm_frozen(model)


def test_unfreeze_top_blocks(model):
    freeze_backbone(model)
    names = unfreeze_backbone(model, top_blocks=2)
    assert names == ["block_15", "block_16"]
    expected = _block_variables(model, names) + _head_variables(model)
    assert _ids(model.trainable_variables) == _ids(expected)
    # block_15/16: expand, depthwise, project convs; Conv_1 joins block_16.
    trainable_layers = {v.path.split("/")[0] for v in get_backbone(model).trainable_variables}
    assert trainable_layers == {
        f"block_{b}_{part}" for b in (15, 16) for part in ("expand", "depthwise", "project")
    } | {"Conv_1"}
    _assert_batch_norm_frozen(model)


def test_unfreeze_everything_and_zero_blocks(model):
    freeze_backbone(model)
    names = unfreeze_backbone(model)
    assert names[0] == "stem" and names[-1] == "block_16" and len(names) == 17
    backbone = get_backbone(model)
    expected = [
        v
        for layer in backbone.layers
        if not isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.weights
        if v.trainable
    ]
    assert len(expected) == 52  # MobileNetV2: one bias-free conv kernel before each BatchNormalization
    assert _ids(backbone.trainable_variables) == _ids(expected)
    _assert_batch_norm_frozen(model)
    assert unfreeze_backbone(model, top_blocks=0) == []
    assert _ids(model.trainable_variables) == _ids(_head_variables(model))
    _assert_batch_norm_frozen(model)
    # More blocks than there are: everything.
    assert len(unfreeze_backbone(model, top_blocks=100)) == 17


def test_unfreeze_from_layer(model):
    names = unfreeze_backbone(model, from_layer="block_16_project")
    assert names == ["block_16"]
    trainable_layers = {v.path.split("/")[0] for v in get_backbone(model).trainable_variables}
    assert trainable_layers == {"block_16_project", "Conv_1"}
    assert not get_backbone(model).get_layer("block_16_depthwise").trainable
    _assert_batch_norm_frozen(model)
    # A block's first layer: the whole block and everything after it.
    assert unfreeze_backbone(model, from_layer="block_15_expand") == ["block_15", "block_16"]
    assert _ids(model.trainable_variables) == _ids(
        _block_variables(model, ["block_15", "block_16"]) + _head_variables(model)
    )
    _assert_batch_norm_frozen(model)


def test_unfreeze_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="no layer 'block_99_project'"):
        unfreeze_backbone(model, from_layer="block_99_project")
    with pytest.raises(ValueError, match="not both"):
        unfreeze_backbone(model, top_blocks=1, from_layer="Conv_1")
    with pytest.raises(ValueError, match="top_blocks must be >= 0"):
        unfreeze_backbone(model, top_blocks=-1)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match="no layer named 'backbone'"):
        freeze_backbone(plain)


@pytest.mark.parametrize(
    "value, kwargs",
    [
        ("all", {}),
        (2, {"top_blocks": 2}),
        ("3", {"top_blocks": 3}),
        (0, {"top_blocks": 0}),
        ("block_13_expand", {"from_layer": "block_13_expand"}),
    ],
)
def test_parse_unfreeze(value, kwargs):
    assert parse_unfreeze(value) == kwargs


def test_fit_after_unfreeze_trains_only_the_unfrozen_blocks(mobilenet_v2_weights):
    # Real weights: a random-init MobileNetV2's activations vanish (~1e-11 at the top), so its
    # gradients would be too small to tell trained from frozen.
    model = classifier("mobilenet_v2", 3, weights=str(mobilenet_v2_weights), image_size=SIZE)
    freeze_backbone(model)
    unfreeze_backbone(model, top_blocks=2)
    _assert_batch_norm_frozen(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy", run_eagerly=True)

    backbone = get_backbone(model)
    before = {v.path: v.numpy().copy() for v in backbone.weights}
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 2, 0], 3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = {v.path: v.numpy() for v in backbone.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}

    unfrozen_kernels = {f"block_{b}_{part}/kernel" for b in (15, 16) for part in ("expand", "depthwise", "project")} | {
        "Conv_1/kernel"
    }
    assert unfrozen_kernels <= set(before)
    assert changed == unfrozen_kernels
    statistics = [p for p in before if p.endswith(("moving_mean", "moving_variance"))]
    assert len(statistics) == 2 * 52 and not changed & set(statistics)
    # Every other variable (frozen blocks, the stem, BN gamma/beta) is untouched.
    assert all(path.startswith(("block_15_", "block_16_", "Conv_1/")) for path in changed)


def test_vit_top_blocks():
    import keras_hub

    vit = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    backbone = Backbone(vit, "tiny_vit", 32, Preprocessing(), "token", {"kind": "none"}, ())
    model = classifier(backbone, 2)
    freeze_backbone(model)
    assert _ids(model.trainable_variables) == _ids(_head_variables(model))
    names = unfreeze_backbone(model, top_blocks=1)
    assert names == ["transformer_block_2"]
    groups = dict(backbone_blocks(vit))
    last = [v for layer in groups["transformer_block_2"] for v in layer.weights]
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in groups["transformer_block_2"][1:])
    assert _ids(vit.trainable_variables) == _ids(last)
    assert not _ids(v for layer in groups["embedding"] for v in layer.weights) & _ids(model.trainable_variables)
    assert not _ids(groups["transformer_block_1"][0].weights) & _ids(model.trainable_variables)
