"""Semantic segmenter: KerasHub DeepLabV3 or SegFormer on a registry backbone.

`segmenter(...)` returns KerasHub's `DeepLabV3ImageSegmenter` or `SegFormerImageSegmenter`, plain
keras.Model subclasses: RGB pixels [B, S, S, 3] in [0, 255] -> logits [B, S, S, num_classes] at the input
resolution. The backbone's normalisation is inside (the pyramid encoder's first layer), as in the other
tasks. Compile with `segmentation_loss()` and `mean_iou_metric(num_classes)`, both ignoring
`IGNORE_INDEX`: KerasHub's own compile defaults (one-hot cross-entropy and accuracy) expect one-hot masks.
"""

from __future__ import annotations

import keras

from kerascv_tl.backbones import Backbone, build_backbone
from kerascv_tl.backbones.pyramid import pyramid_encoder
from kerascv_tl.data.mask_records import IGNORE_INDEX
from kerascv_tl.precision import float32_scope, follow_backbone_policy

ARCHITECTURES = ("auto", "deeplabv3", "segformer")
DEEPLAB_DILATION_RATES = (6, 12, 18)  # atrous rates of the spatial pyramid pooling on the stride-16 level


def segmenter(
    backbone: str | Backbone,
    num_classes: int,
    weights: str | None = "imagenet",
    image_size: int = 512,
    architecture: str = "auto",
    preprocessing: dict | None = None,
    fallback_to_random: bool = False,
) -> keras.Model:
    """`architecture`: "deeplabv3" (DeepLabV3+: atrous pyramid pooling on stride 16, decoder with the
    stride-4 features), "segformer" (all-MLP head over strides 4/8/16/32), or "auto" (segformer for MiT
    backbones, deeplabv3 otherwise)."""
    import keras_hub

    if num_classes < 2:
        raise ValueError(f"a segmenter needs at least 2 classes (background included), got {num_classes}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown segmentation architecture {architecture!r}; expected one of {ARCHITECTURES}")
    if not isinstance(backbone, Backbone):
        backbone = build_backbone(backbone, weights, image_size, preprocessing, fallback_to_random)
    if architecture == "auto":
        architecture = "segformer" if type(backbone.model).__name__ == "MiTBackbone" else "deeplabv3"
    size = backbone.image_size
    name = f"{backbone.short_name}_{architecture}"
    # The encoder and the decoder compute in the current dtype policy; the segmenter's own layers (the 1x1
    # classifier convolution, and SegFormer's dropout and resize to the input size) are float32, so the logits
    # the loss and the metrics see are float32 in every precision (reloaded under the default float32 policy, the
    # model is rebuilt the same way: the encoder and decoder keep their saved policy).
    if architecture == "segformer":
        encoder = pyramid_encoder(backbone, strides=(4, 8, 16, 32), level_offset=1)  # SegFormer reads P1..P4
        head = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=256)
        with float32_scope():
            model = keras_hub.models.SegFormerImageSegmenter(backbone=head, num_classes=num_classes, name=name)
        return follow_backbone_policy(model)
    encoder = pyramid_encoder(backbone, strides=(4, 16))
    head = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P4",
        low_level_feature_key="P2",
        upsampling_size=4,
        dilation_rates=list(DEEPLAB_DILATION_RATES),
        image_shape=(size, size, 3),
    )
    with float32_scope():
        model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=head, num_classes=num_classes, name=name)
    return follow_backbone_policy(model)


def segmentation_loss() -> keras.losses.Loss:
    """Pixel-wise cross-entropy on logits; pixels labelled IGNORE_INDEX count for nothing. With per-pixel sample
    weights (`train.class_weight`) the loss is sum(weight * cross-entropy) / number of labelled pixels."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_INDEX)


def mean_iou_metric(num_classes: int, name: str = "mean_iou") -> keras.metrics.MeanIoU:
    """Keras' MeanIoU on logits and sparse masks, pixels labelled IGNORE_INDEX excluded."""
    return keras.metrics.MeanIoU(num_classes, ignore_class=IGNORE_INDEX, sparse_y_pred=False, name=name)
