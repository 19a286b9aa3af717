"""What a backbone looks like inside: its blocks (for partial unfreezing) and pyramid levels.

Both are read off the built model rather than hard-coded, because some keras.applications nets name
layers from a process-wide counter (MobileNetV3's `activation_17`, ConvNeXt's `layer_normalization`).
"""

from __future__ import annotations

import re

import keras

# One pattern per family; the pattern matching the most layers of a model defines its blocks.
BLOCK_PATTERNS = (
    r"^(conv\d_block\d+)_",  # ResNet, ResNetV2
    r"^(block_\d+)_",  # MobileNetV2
    r"^(expanded_conv(?:_\d+)?)_",  # MobileNetV3
    r"^(block\d+[a-z])_",  # EfficientNet, EfficientNetV2
    r"^(.+_stage_\d+_block_\d+)_",  # ConvNeXt
    r"^(stack\d+_block\d+)_",  # KerasHub ResNet
    r"^(hierarchical_encoder_\d+_\d+)$",  # KerasHub MiT (SegFormer's encoder)
)


def backbone_blocks(backbone: keras.Model) -> list[tuple[str, list[keras.layers.Layer]]]:
    """Ordered (block name, layers) groups, from the stem to the top.

    Layers before the first block form a "stem" group; layers after a block's last match (the final
    1x1 conv and activation, say) join that block. A KerasHub ViT's groups are its embedding, each
    transformer block, and the final norm.
    """
    encoder = _vit_encoder(backbone)
    if encoder is not None:
        groups = [("embedding", [layer for layer in backbone.layers if layer is not encoder])]
        groups += [(layer.name, [layer]) for layer in encoder.encoder_layers]
        rest = [layer for layer in encoder._layers if layer not in encoder.encoder_layers]
        groups[-1][1].extend(rest)
        return groups
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    best = max(BLOCK_PATTERNS, key=lambda p: sum(bool(re.match(p, layer.name)) for layer in layers))
    groups: list[tuple[str, list]] = [("stem", [])]
    for layer in layers:
        match = re.match(best, layer.name)
        if match and match.group(1) != groups[-1][0]:
            groups.append((match.group(1), []))
        groups[-1][1].append(layer)
    if not groups[0][1]:
        groups.pop(0)
    return groups


def _vit_encoder(backbone: keras.Model):
    for layer in backbone.layers:
        if hasattr(layer, "encoder_layers"):
            return layer
    return None


def pyramid_layer_names(backbone: keras.Model, strides=(8, 16, 32)) -> dict[int, str]:
    """Stride -> name of the LAST layer whose output has that stride (the deepest feature at that scale)."""
    height = backbone.input_shape[1]
    if not strides or height is None:
        return {}
    found: dict[int, str] = {}
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.ZeroPadding2D):
            continue  # its output is larger than the feature map it pads
        shape = getattr(layer.output, "shape", None)
        if shape is None or len(shape) != 4 or not shape[1]:
            continue
        stride = height / shape[1]
        for wanted in strides:
            if abs(stride - wanted) < 0.5:
                found[wanted] = layer.name
    missing = [s for s in strides if s not in found]
    if missing:
        from kerascv_tl.config import ConfigError  # a user's setting to change, reported as one line

        step = max(strides)
        size = max(step * 2, -(-int(height) // step) * step)
        raise ConfigError(
            f"data.image_size {height} is too small for a feature pyramid at strides {list(strides)}: "
            f"{backbone.name} has no feature map at stride {missing}; use a multiple of {step}, e.g. {size}"
        )
    return found
