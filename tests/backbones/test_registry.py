"""Every registered backbone builds (random init, tiny input) and exposes a correct feature pyramid."""

from __future__ import annotations

import pytest

from kerascv_tl.backbones import REGISTRY, Backbone, build_backbone, get_backbone_spec, list_backbones

CONV_NETS = [name for name, spec in REGISTRY.items() if spec.pooling == "avg"]
VITS = [name for name, spec in REGISTRY.items() if spec.pooling == "token"]
CONV_SIZE = 64
VIT_SIZE = 32


def test_registry_contents():
    names = list_backbones()
    assert names == list(REGISTRY)
    for expected in ("resnet50", "resnet152", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "vit_tiny16"):
        assert expected in names
    assert set(CONV_NETS) | set(VITS) == set(names) and VITS
    for name in names:
        spec = get_backbone_spec(name)
        assert spec.name == name
        assert spec.source in ("keras.applications", "keras_hub")
        assert spec.default_image_size == 224


@pytest.mark.parametrize("name", CONV_NETS)
def test_conv_backbone_builds_with_pyramid(name, tiny_backbone):
    backbone = tiny_backbone(name)
    assert isinstance(backbone, Backbone)
    assert backbone.name == name and backbone.image_size == CONV_SIZE
    assert backbone.pooling == "avg"
    assert backbone.weights_source == {"kind": "none"}
    assert backbone.preprocessing == get_backbone_spec(name).preprocessing
    model = backbone.model
    assert tuple(model.input_shape) == (None, CONV_SIZE, CONV_SIZE, 3)
    out = model.output_shape
    assert len(out) == 4 and out[1] == out[2] == CONV_SIZE // 32 and out[3] > 0

    pyramid = backbone.pyramid_layers
    assert sorted(pyramid) == [8, 16, 32]
    for stride, layer_name in pyramid.items():
        shape = model.get_layer(layer_name).output.shape
        assert len(shape) == 4, (stride, layer_name, shape)
        assert shape[1] == shape[2] == CONV_SIZE // stride, (stride, layer_name, shape)
    # The stride-32 level is the deepest feature map: the backbone's own output.
    assert model.get_layer(pyramid[32]).output is model.outputs[0]
    # Levels are ordered from shallow to deep in the layer list.
    order = [layer.name for layer in model.layers]
    assert order.index(pyramid[8]) < order.index(pyramid[16]) < order.index(pyramid[32])


@pytest.mark.parametrize("name", VITS)
def test_vit_builds_without_pyramid(name, tiny_backbone):
    backbone = tiny_backbone(name)
    assert backbone.image_size == VIT_SIZE
    assert backbone.pooling == "token"
    assert backbone.pyramid_strides == () and backbone.pyramid_layers == {}
    assert backbone.weights_source == {"kind": "none"}
    tokens = (VIT_SIZE // 16) ** 2 + 1  # patches + class token
    out = backbone.model.output_shape
    assert len(out) == 3 and out[1] == tokens
    assert out[2] == {"vit_tiny16": 192, "vit_base16": 768}[name]


def test_default_image_size_is_the_registry_one():
    backbone = build_backbone("mobilenet_v3_small", weights="random")
    assert backbone.weights_source == {"kind": "none"}
    assert backbone.image_size == 224 and backbone.model.input_shape[1:3] == (224, 224)


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError) as info:
        get_backbone_spec("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in REGISTRY:
        assert name in message
    with pytest.raises(ValueError, match="unknown backbone 'nope'"):
        build_backbone("nope", weights=None)
