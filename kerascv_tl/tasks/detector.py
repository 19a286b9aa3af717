"""Object detector: KerasHub RetinaNet on a registry backbone through the feature-pyramid adapter.

`detector(...)` returns a `RetinaNetDetector` (KerasHub's `RetinaNetObjectDetector` with its loss normalised over
the global batch under tf.distribute, see `tasks/retinanet.py`), a plain keras.Model subclass: it compiles
with focal + Huber losses by default, fits on (images, {"boxes", "labels"}) with boxes in "xyxy" pixels of
the model input (labels padded with -1), predicts decoded, non-max-suppressed boxes, saves and loads.
Images are RGB pixels in [0, 255] at `image_size` x `image_size` (see `resize_with_pad`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kerascv_tl.backbones import Backbone, build_backbone
from kerascv_tl.backbones.pyramid import pyramid_encoder
from kerascv_tl.precision import float32_scope, follow_backbone_policy
from kerascv_tl.tasks.anchors import KERAS_HUB_ASPECT_RATIOS

BOX_FORMAT = "xyxy"
ANCHOR_SCALES = 3  # KerasHub's RetinaNet defaults: 3 scales per level, base size 4 x the level's stride
ANCHOR_SIZE = 4.0


def detector(
    backbone: str | Backbone,
    num_classes: int,
    weights: str | None = "imagenet",
    image_size: int = 384,
    preprocessing: dict | None = None,
    fallback_to_random: bool = False,
    anchor_aspect_ratios: Sequence[float] = KERAS_HUB_ASPECT_RATIOS,
    group_norm: bool = True,
) -> keras.Model:
    """`anchor_aspect_ratios`: height / width of the anchors at every location and scale (`tasks/anchors.py` fits
    them to training boxes); the anchors keep KerasHub's RetinaNet sizes (4 x the level's stride, 3 scales).
    `group_norm`: GroupNorm after each conv of the box and class towers (KerasHub's `use_prediction_head_norm`, off
    in KerasHub's default): the heads start from nothing, and with it they learn boxes far faster."""
    import keras_hub

    if num_classes < 1:
        raise ValueError(f"a detector needs at least 1 class, got {num_classes}")
    if not isinstance(backbone, Backbone):
        backbone = build_backbone(backbone, weights, image_size, preprocessing, fallback_to_random)
    encoder = pyramid_encoder(backbone)
    size = backbone.image_size
    retinanet_backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder,
        min_level=3,
        max_level=7,
        use_p5=False,
        image_shape=(size, size, 3),
    )
    from kerascv_tl.tasks.retinanet import RetinaNetDetector

    # The FPN and the prediction heads compute in the policy the backbone was built with (KerasHub gives the heads
    # the backbone's policy, also when the model is reloaded); the detector's own layers, the reshapes and
    # concatenations that gather the heads' per-level outputs, are float32, so the class logits and box deltas the
    # losses and the box decoder see are float32 in every precision (also after reloading under the default policy).
    with float32_scope():
        anchor_generator = keras_hub.layers.AnchorGenerator(
            BOX_FORMAT,
            min_level=retinanet_backbone.min_level,
            max_level=retinanet_backbone.max_level,
            num_scales=ANCHOR_SCALES,
            aspect_ratios=[float(r) for r in anchor_aspect_ratios],
            anchor_size=ANCHOR_SIZE,
        )
        model = RetinaNetDetector(
            backbone=retinanet_backbone,
            num_classes=num_classes,
            bounding_box_format=BOX_FORMAT,
            anchor_generator=anchor_generator,
            use_prediction_head_norm=group_norm,
            name=f"{backbone.short_name}_retinanet",
        )
    return follow_backbone_policy(model)
