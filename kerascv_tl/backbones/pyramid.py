"""Feature-pyramid adapter: any registry conv backbone as a KerasHub image encoder.

KerasHub's detection and segmentation backbones (RetinaNetBackbone, DeepLabV3) take an `image_encoder`
exposing `pyramid_outputs = {"P3": ..., "P4": ..., "P5": ...}`. keras.applications models do not, so
`PyramidEncoder` taps the registry's stride-8/16/32 layers and exposes them under those names. The
encoder takes RGB pixels in [0, 255]; the backbone's normalisation is its first layer, as in the
classifier.
"""

from __future__ import annotations

import keras

from kerascv_tl.backbones.preprocessing import ImagePreprocessing


def level_name(stride: int, level_offset: int = 0) -> str:
    """KerasHub's level key of a stride: P{log2(stride)} (ResNet, RetinaNet, DeepLabV3), or shifted by
    `level_offset` (SegFormer reads MiT's levels as P1..P4 for strides 4..32: offset 1)."""
    return f"P{int(stride).bit_length() - 1 - level_offset}"


@keras.saving.register_keras_serializable(package="kerascv_tl")
class PyramidEncoder(keras.Model):
    """Pixels [B, H, W, 3] in [0, 255] -> {"P3", "P4", "P5"} (or the levels asked for) of a conv backbone.

    The tapped backbone is the nested model named "features" (its layers keep their keras.applications
    names, so `backbone_blocks` and the freeze helpers work on it). `hidden_dims` (channels per level,
    shallow to deep) is what KerasHub's SegFormer head reads from an encoder.
    """

    def __init__(
        self, backbone: keras.Model, pyramid_layers: dict, preprocessing: dict, level_offset: int = 0, **kwargs
    ):
        taps = {
            level_name(int(stride), level_offset): name
            for stride, name in sorted(pyramid_layers.items(), key=lambda item: int(item[0]))
        }
        features = keras.Model(
            backbone.input, {level: backbone.get_layer(name).output for level, name in taps.items()}, name="features"
        )
        inputs = keras.Input(shape=backbone.input_shape[1:], name="images")
        x = ImagePreprocessing(**preprocessing, name="preprocessing")(inputs)
        outputs = features(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Only the config is kept: tracking the whole backbone would also track the layers above the
        # deepest tap (unused by DeepLabV3, which stops at stride 16), which get no gradients.
        self._backbone_config = keras.layers.serialize(backbone)
        self.pyramid_layers = {int(k): v for k, v in pyramid_layers.items()}
        self.preprocessing = dict(preprocessing)
        self.level_offset = int(level_offset)
        self.pyramid_outputs = outputs
        self.hidden_dims = [int(outputs[level].shape[-1]) for level in taps]

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": self._backbone_config,
            "pyramid_layers": {str(k): v for k, v in self.pyramid_layers.items()},
            "preprocessing": self.preprocessing,
            "level_offset": self.level_offset,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


def pyramid_encoder(backbone, strides=None, level_offset: int = 0) -> PyramidEncoder:
    """A built `kerascv_tl.backbones.Backbone` -> `PyramidEncoder` tapping `strides` (default: the
    registry's 8/16/32); single-scale nets (ViT) are refused."""
    if not backbone.pyramid_strides:
        raise ValueError(
            f"{backbone.name} has a single feature scale (no stride 8/16/32 pyramid); "
            "detection and segmentation need a convolutional backbone"
        )
    pre = backbone.preprocessing
    preprocessing = {
        "scale": pre.scale,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "channel_order": pre.channel_order,
    }
    layers = backbone.pyramid_layers_at(strides or backbone.pyramid_strides)
    return PyramidEncoder(backbone.model, layers, preprocessing, level_offset, name="pyramid_encoder")
