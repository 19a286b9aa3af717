"""Backbone registry: name -> builder, default input size, preprocessing, pooling and pyramid strides.

keras.applications nets come with real ImageNet weights through Keras' download-and-cache path; ViT comes
from KerasHub (KerasCV, where Keras' vision models used to live, is retired upstream in favour of KerasHub).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras

from kerascv_tl.backbones.preprocessing import Preprocessing

# builder(input_shape, weights) -> feature model; weights is None or "imagenet".
Builder = Callable[[tuple[int, int, int], "str | None"], keras.Model]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    source: str  # "keras.applications" or "keras_hub"
    builder: Builder
    default_image_size: int
    preprocessing: Preprocessing
    # Parameters of the network without its top, built at `default_image_size`: declared so that listing the
    # backbones builds nothing (`kerascv-tl backbones --check` builds them and compares). The convolutional
    # nets' count does not depend on the image size; ViT's position embeddings grow with it.
    params: int
    pooling: str = "avg"  # "avg": global average pool of a feature map; "token": the class token
    pyramid_strides: tuple[int, ...] = (8, 16, 32)  # () when the net has a single scale (ViT)
    imagenet_preset: str | None = None  # KerasHub preset used for weights="imagenet"
    description: str = ""
    kwargs: dict = field(default_factory=dict)

    def build(self, image_size: int, weights: str | None = None) -> keras.Model:
        return self.builder((image_size, image_size, 3), weights)


def _applications(fn: Callable, **extra) -> Builder:
    def build(input_shape, weights):
        return fn(include_top=False, weights=weights, input_shape=input_shape, **extra)

    return build


def _vit(patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int) -> Builder:
    def build(input_shape, weights):
        import keras_hub

        if weights is not None:
            raise ValueError("ViT weights come from a KerasHub preset; the registry resolves them")
        return keras_hub.models.ViTBackbone(
            image_shape=input_shape,
            patch_size=patch_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            mlp_dim=mlp_dim,
            dropout_rate=0.0,
            attention_dropout=0.0,
        )

    return build


def _hub_resnet(blocks: list[int], block_type: str) -> Builder:
    def build(input_shape, weights):
        import keras_hub

        if weights is not None:
            raise ValueError("KerasHub ResNet weights come from a KerasHub preset; the registry resolves them")
        return keras_hub.models.ResNetBackbone(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=blocks,
            stackwise_num_strides=[1, 2, 2, 2],
            block_type=block_type,
            image_shape=input_shape,
        )

    return build


def _mit_b0(input_shape, weights):
    import keras_hub

    if weights is not None:
        raise ValueError("MiT weights come from a KerasHub preset; the registry resolves them")
    return keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2],
        num_layers=4,
        layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1],
        max_drop_path_rate=0.1,
        layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2],
        hidden_dims=[32, 64, 160, 256],
        image_shape=input_shape,
    )


A = keras.applications
_CAFFE = Preprocessing.keras_mode("caffe")
_TF = Preprocessing.keras_mode("tf")
_TORCH = Preprocessing.keras_mode("torch")
_INSIDE = Preprocessing.keras_mode("none")

_SPECS = [
    BackboneSpec("resnet50", "keras.applications", _applications(A.ResNet50), 224, _CAFFE, params=23_587_712),
    BackboneSpec("resnet101", "keras.applications", _applications(A.ResNet101), 224, _CAFFE, params=42_658_176),
    BackboneSpec("resnet152", "keras.applications", _applications(A.ResNet152), 224, _CAFFE, params=58_370_944),
    BackboneSpec("resnet50_v2", "keras.applications", _applications(A.ResNet50V2), 224, _TF, params=23_564_800),
    BackboneSpec("mobilenet_v2", "keras.applications", _applications(A.MobileNetV2), 224, _TF, params=2_257_984),
    BackboneSpec(
        "mobilenet_v3_small", "keras.applications", _applications(A.MobileNetV3Small), 224, _INSIDE, params=939_120
    ),
    BackboneSpec(
        "mobilenet_v3_large", "keras.applications", _applications(A.MobileNetV3Large), 224, _INSIDE, params=2_996_352
    ),
    BackboneSpec(
        "efficientnet_b0", "keras.applications", _applications(A.EfficientNetB0), 224, _INSIDE, params=4_049_571
    ),
    BackboneSpec(
        "efficientnetv2_b0", "keras.applications", _applications(A.EfficientNetV2B0), 224, _INSIDE, params=5_919_312
    ),
    BackboneSpec("convnext_tiny", "keras.applications", _applications(A.ConvNeXtTiny), 224, _INSIDE, params=27_820_128),
    BackboneSpec(
        "hub_resnet18",
        "keras_hub",
        _hub_resnet([2, 2, 2, 2], "basic_block"),
        224,
        _TORCH,
        params=11_186_112,
        imagenet_preset="resnet_18_imagenet",
        description="KerasHub ResNet-18; weights=imagenet loads KerasHub's resnet_18_imagenet",
    ),
    BackboneSpec(
        "hub_resnet50",
        "keras_hub",
        _hub_resnet([3, 4, 6, 3], "bottleneck_block"),
        224,
        _TORCH,
        params=23_561_152,
        imagenet_preset="resnet_50_imagenet",
        description="KerasHub ResNet-50; weights=imagenet loads KerasHub's resnet_50_imagenet",
    ),
    BackboneSpec(
        "mit_b0",
        "keras_hub",
        _mit_b0,
        224,
        _TORCH,
        params=3_319_392,
        description="Mix Transformer B0, SegFormer's encoder; KerasHub's MiT presets are trained on ADE20K or "
        "Cityscapes (e.g. mit_b0_ade20k_512): pass a preset handle or folder as weights",
    ),
    BackboneSpec(
        "vit_tiny16",
        "keras_hub",
        _vit(16, 12, 3, 192, 768),
        224,
        Preprocessing(1.0 / 255.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "RGB", "ViT: scale to [-1, 1]"),
        params=5_524_416,
        pooling="token",
        pyramid_strides=(),
        description="ViT-Ti/16; no KerasHub ImageNet preset: pass a preset handle or folder as weights",
    ),
    BackboneSpec(
        "vit_base16",
        "keras_hub",
        _vit(16, 12, 12, 768, 3072),
        224,
        Preprocessing(1.0 / 255.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "RGB", "ViT: scale to [-1, 1]"),
        params=85_798_656,
        pooling="token",
        pyramid_strides=(),
        imagenet_preset="vit_base_patch16_224_imagenet",
        description="ViT-B/16; weights=imagenet loads KerasHub's vit_base_patch16_224_imagenet",
    ),
]
REGISTRY: dict[str, BackboneSpec] = {spec.name: spec for spec in _SPECS}


def list_backbones() -> list[str]:
    return list(REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; registered: {', '.join(REGISTRY)} "
            "(or give a KerasHub preset handle such as kaggle://... / hf://..., or a local preset folder)"
        ) from None
