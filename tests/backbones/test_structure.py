"""Backbone blocks (for partial unfreezing) read off the built models."""

from __future__ import annotations

import keras
import pytest

from kerascv_tl.backbones import backbone_blocks, pyramid_layer_names
from kerascv_tl.config import ConfigError


def _check_partition(model: keras.Model, groups) -> None:
    """Every non-input layer appears in exactly one group, in model order."""
    flat = [layer for _, layers in groups for layer in layers]
    expected = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [layer.name for layer in flat] == [layer.name for layer in expected]
    names = [name for name, _ in groups]
    assert len(names) == len(set(names)), names
    assert all(layers for _, layers in groups)


TOP = {"Conv_1", "Conv_1_bn", "out_relu"}


def test_mobilenet_v2_blocks(tiny_backbone):
    model = tiny_backbone("mobilenet_v2").model
    groups = backbone_blocks(model)
    _check_partition(model, groups)
    names = [name for name, _ in groups]
    assert names == ["stem"] + [f"block_{i}" for i in range(1, 17)]
    stem = [layer.name for layer in groups[0][1]]
    assert stem[0] == "Conv1" and "expanded_conv_project_BN" in stem
    last_name, last = groups[-1]
    last_names = [layer.name for layer in last]
    assert last_name == "block_16"
    assert last_names[0].startswith("block_16_")
    assert last_names[-3:] == ["Conv_1", "Conv_1_bn", "out_relu"]  # the top 1x1 conv joins the last block
    for name, layers in groups[1:]:
        assert all(layer.name.startswith(name + "_") for layer in layers if layer.name not in TOP)
        assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in layers)


def test_resnet50_blocks(tiny_backbone):
    model = tiny_backbone("resnet50").model
    groups = backbone_blocks(model)
    _check_partition(model, groups)
    expected = ["stem"] + [
        f"conv{stage}_block{b}" for stage, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)
    ]
    assert [name for name, _ in groups] == expected
    assert [layer.name for layer in groups[0][1]] == [
        "conv1_pad",
        "conv1_conv",
        "conv1_bn",
        "conv1_relu",
        "pool1_pad",
        "pool1_pool",
    ]
    for name, layers in groups[1:]:
        assert all(layer.name.startswith(name + "_") for layer in layers)
        assert layers[-1].name == f"{name}_out"


def test_efficientnet_b0_blocks(tiny_backbone):
    model = tiny_backbone("efficientnet_b0").model
    groups = backbone_blocks(model)
    _check_partition(model, groups)
    expected = [
        "stem",
        "block1a",
        "block2a",
        "block2b",
        "block3a",
        "block3b",
        "block4a",
        "block4b",
        "block4c",
        "block5a",
        "block5b",
        "block5c",
        "block6a",
        "block6b",
        "block6c",
        "block6d",
        "block7a",
    ]
    assert [name for name, _ in groups] == expected
    stem = [layer.name for layer in groups[0][1]]
    assert "stem_conv" in stem and not any(name.startswith("block") for name in stem)
    assert [layer.name for layer in groups[-1][1]][-3:] == ["top_conv", "top_bn", "top_activation"]


def _tiny_vit():
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )


def test_vit_blocks_are_embedding_and_transformer_blocks():
    model = _tiny_vit()
    groups = backbone_blocks(model)
    encoder = next(layer for layer in model.layers if hasattr(layer, "encoder_layers"))
    assert [name for name, _ in groups] == ["embedding"] + [layer.name for layer in encoder.encoder_layers]
    assert len(groups) == 3
    embedding = groups[0][1]
    assert encoder not in embedding
    assert any("embedding" in type(layer).__name__.lower() for layer in embedding)
    for (_, layers), block in zip(groups[1:], encoder.encoder_layers):
        assert layers[0] is block
    # The encoder's final norm joins the last transformer block; nothing with weights is left out.
    last = groups[-1][1]
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in last[1:])
    grouped = {id(v) for _, layers in groups for layer in layers for v in layer.weights}
    assert {id(v) for v in model.weights} <= grouped


def test_vit_registry_backbone_has_one_group_per_transformer_block(tiny_backbone):
    model = tiny_backbone("vit_tiny16").model
    groups = backbone_blocks(model)
    assert [name for name, _ in groups] == ["embedding"] + [f"transformer_block_{i}" for i in range(1, 13)]
    assert pyramid_layer_names(model, ()) == {}


def test_pyramid_reports_missing_strides(tiny_backbone):
    model = tiny_backbone("mobilenet_v2").model
    (name,) = pyramid_layer_names(model, (4,)).values()
    assert model.get_layer(name).output.shape[1:3] == (16, 16)
    with pytest.raises(ConfigError, match=r"no feature map at stride \[64\]"):
        pyramid_layer_names(model, (8, 64))
